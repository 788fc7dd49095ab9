/**
 * The union's objects by name: their attributes (getattr, setattr), symlink targets, access checks.
 *
 * Invariants:
 * - Changing an object's attributes copies it up first (a truncate to 0 without its data); setattr
 *   through an open handle whose name is gone changes the open file itself.
 * - A handle's attributes are its file's, once it followed a copy-up (files.ts), with the number the
 *   union reports when its name still resolves to that file.
 */
import * as fs from "node:fs";
import { fsError } from "../errors";
import { relOf, type WritableFile } from "../layer";
import { clearSetid, withoutSetid, type Files } from "./files";
import type { UnionState } from "./state";
import type { Attr, SetAttrRequest } from "./types";

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const O_ACCMODE = 3;
const { O_RDONLY } = fs.constants;

export class Objects {
  constructor(
    private readonly s: UnionState,
    private readonly files: Files,
  ) {}

  getattr(path: string, fh?: number): Attr {
    const f = this.s.handles.maybeFile(fh);
    // A handle opened before a copy-up reports (and then reads) the copy, not the old lower file.
    if (f) return this.files.attrOf(path, f);
    return this.s.attrs.attrOf(path, this.s.need(path));
  }

  lookup(path: string): Attr | undefined {
    const r = this.s.lookup.resolve(path);
    return r === undefined ? undefined : this.s.attrs.attrOf(path, r);
  }

  setattr(path: string, req: SetAttrRequest, fh?: number): Attr {
    const upper = this.s.writable();
    const f = this.s.handles.maybeFile(fh);
    const found = this.s.lookup.resolve(path);
    if (!found && f?.upper) return this.fsetattr(f.upper, req);
    const r = found ?? this.s.need(path);
    this.s.copyUp(path, r, { data: req.size !== 0n });
    const rel = relOf(path);
    if (req.size !== undefined) {
      if (f?.upper && (f.flags & O_ACCMODE) !== O_RDONLY) f.upper.truncate(req.size);
      else upper.truncate(rel, req.size);
    }
    if (req.uid !== undefined || req.gid !== undefined) {
      const [uid, gid] = this.owner(req);
      upper.lchown(rel, uid, gid);
    }
    if (req.killSuidgid && req.mode === undefined) {
      const mode = Number(upper.lstat(rel).mode);
      if (withoutSetid(mode) !== mode) upper.chmod(rel, withoutSetid(mode));
    }
    if (req.mode !== undefined && (Number(r.st.mode) & S_IFMT) !== S_IFLNK) upper.chmod(rel, req.mode);
    if (req.atime !== undefined || req.mtime !== undefined) upper.utimens(rel, req.atime, req.mtime);
    return this.getattr(path);
  }

  /** setattr through an open top-layer handle whose name is gone (ftruncate, fchmod … after unlink). */
  private fsetattr(file: WritableFile, req: SetAttrRequest): Attr {
    if (req.size !== undefined) file.truncate(req.size);
    if (req.uid !== undefined || req.gid !== undefined) {
      const [uid, gid] = this.owner(req);
      file.chown(uid, gid);
    }
    if (req.killSuidgid && req.mode === undefined) clearSetid(file);
    if (req.mode !== undefined) file.chmod(req.mode);
    if (req.atime !== undefined || req.mtime !== undefined) file.utimens(req.atime, req.mtime);
    return this.s.attrs.attrOfStat(file.fstat());
  }

  /** The owner a chown asks for, as stored on disk (-1: unchanged). */
  private owner(req: SetAttrRequest): [number, number] {
    const uid = req.uid === undefined ? -1 : this.s.attrs.uids.toDisk(req.uid);
    const gid = req.gid === undefined ? -1 : this.s.attrs.gids.toDisk(req.gid);
    return [uid, gid];
  }

  readlink(path: string): string {
    const r = this.s.need(path);
    if ((Number(r.st.mode) & S_IFMT) !== S_IFLNK) throw fsError("EINVAL", path);
    return this.s.layer(r.layer).readlink(relOf(path));
  }

  access(path: string, mask: number): void {
    this.s.need(path);
    if (mask & fs.constants.W_OK && !this.s.upper) throw fsError("EROFS", path);
  }
}
