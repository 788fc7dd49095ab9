/**
 * The union: layers stacked top first, served as one tree through syscall-shaped methods.
 * This file holds attributes, open files, directories, statfs and extended attributes; names are in
 * namespace.ts and lookups and copy-up in core.ts.
 *
 * Invariants:
 * - A file opened for writing is always the top layer's copy; a read-only handle on a lower file follows
 *   a later copy-up of that file, so it sees writes made through other handles.
 * - A directory handle owns a snapshot of the merged listing taken at opendir.
 * - Handles and listings made for callers are the only reads that change access times, and only in the
 *   writable layer, as the union's atime policy says (atime.ts); `accessTouch` tells a transport which
 *   reads it must let through for that.
 */
import * as fs from "node:fs";
import { fsError, isAbsent } from "../errors";
import { seekFile, type WritableFile } from "../layer";
import { isAclXattr, isNoAcl } from "./acl";
import { isPrivateXattr } from "./core";
import { mergedListing } from "./listing";
import { UnionNamespace } from "./namespace";
import { relOf } from "./resolve";
import { statFsOf } from "./attr";
import { touchOf, DEFAULT_ATIME, type AccessTouch } from "./atime";
import type { Attr, BackingFile, Caller, DirEntry, SetAttrRequest, StatFs, UnionOps } from "./types";

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;
const SETID_BITS = S_ISUID | S_ISGID;
const O_ACCMODE = 3;
const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_SYNC, O_DSYNC, O_NOATIME, O_NONBLOCK } =
  fs.constants;
/** open(2) flags passed through to the layer file; O_DIRECT is dropped (our buffers are not aligned). */
const PASSED_OPEN_FLAGS = O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME | O_NONBLOCK;

/** The mode after an unprivileged write: no set-uid bit, no set-gid bit if group-executable. */
function withoutSetid(mode: number): number {
  return mode & ~S_ISUID & ~(mode & S_IXGRP ? S_ISGID : 0);
}

/** Clears the set-id bits of an open top-layer file; whether there were any. */
function clearSetid(file: WritableFile): boolean {
  const mode = Number(file.fstat().mode);
  if (withoutSetid(mode) === mode) return false;
  file.chmod(withoutSetid(mode));
  return true;
}

export { isPrivateXattr };
export type { UnionOptions } from "./core";

export class Union extends UnionNamespace implements UnionOps {
  // ---- attributes ----------------------------------------------------------------------------------

  setattr(path: string, req: SetAttrRequest, fh?: number): Attr {
    const upper = this.writable();
    const f = this.handles.maybeFile(fh);
    const found = this.resolver.resolve(path);
    if (!found && f?.upper) return this.fsetattr(f.upper, req);
    const r = found ?? this.need(path);
    if (r.dirLayers) this.ensureUpperDir(path);
    else this.copyUpFile(path, r, req.size !== 0n);
    const rel = relOf(path);
    if (req.size !== undefined) {
      if (f?.upper && (f.flags & O_ACCMODE) !== O_RDONLY) f.upper.truncate(req.size);
      else upper.truncate(rel, req.size);
    }
    if (req.uid !== undefined || req.gid !== undefined) {
      const uid = req.uid === undefined ? -1 : this.uids.toDisk(req.uid);
      const gid = req.gid === undefined ? -1 : this.gids.toDisk(req.gid);
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
      const uid = req.uid === undefined ? -1 : this.uids.toDisk(req.uid);
      const gid = req.gid === undefined ? -1 : this.gids.toDisk(req.gid);
      file.chown(uid, gid);
    }
    if (req.killSuidgid && req.mode === undefined) clearSetid(file);
    if (req.mode !== undefined) file.chmod(req.mode);
    if (req.atime !== undefined || req.mtime !== undefined) file.utimens(req.atime, req.mtime);
    return this.attrOfStat(file.fstat());
  }

  // ---- files ---------------------------------------------------------------------------------------

  open(path: string, flags: number): number {
    const r = this.need(path);
    if (r.dirLayers) throw fsError("EISDIR", path);
    let layer = r.layer;
    if ((flags & O_ACCMODE) !== O_RDONLY || flags & O_TRUNC) {
      this.copyUpFile(path, r, !(flags & O_TRUNC));
      layer = this.writable().index;
    }
    const [rel, passed] = [relOf(path), flags & PASSED_OPEN_FLAGS];
    const upper = layer === this.upper?.index ? this.upper.openAccess(rel, passed) : undefined;
    const file = upper ?? this.layer(layer).openAccess(rel, passed);
    return this.handles.addFile({ file, upper, path, layer, flags, epoch: this.copyUpEpoch });
  }

  create(path: string, flags: number, mode: number, caller: Caller): { fh: number; attr: Attr } {
    if (this.resolver.resolve(path)) {
      if (flags & O_EXCL) throw fsError("EEXIST", path);
      const fh = this.open(path, flags & ~O_CREAT);
      return { fh, attr: this.getattr(path, fh) };
    }
    this.prepareCreate(path, true);
    const upper = this.writable();
    const perm = this.newMode(path, mode, caller) & 0o7777;
    let file: WritableFile | undefined;
    this.createAt(path, (layer, rel) => {
      file = layer.create(rel, (flags & PASSED_OPEN_FLAGS) | O_EXCL, perm);
      this.own(layer, rel, path, caller);
    });
    let made = file as WritableFile;
    if ((flags & O_ACCMODE) !== O_WRONLY)
      made = upper.forAccess(relOf(path), made, flags & PASSED_OPEN_FLAGS);
    const fh = this.handles.addFile({
      file: made,
      upper: made,
      path,
      layer: upper.index,
      flags,
      epoch: this.copyUpEpoch,
    });
    // A new object has no origin to report: its own inode number, as getattr would find it.
    return { fh, attr: this.attrOfStat(made.fstat()) };
  }

  read(fh: number, length: number, position: bigint): Buffer {
    const f = this.handles.file(fh);
    if (f.epoch !== this.copyUpEpoch) this.followCopyUp(f);
    return f.file.read(length, position);
  }

  write(fh: number, data: Buffer, position: bigint): number {
    return this.writableFile(fh).write(data, position);
  }

  flush(fh: number): void {
    this.handles.file(fh);
  }

  fsync(fh: number, datasync: boolean): void {
    const f = this.handles.file(fh);
    if (this.opts.noFsync) return;
    f.upper?.sync(datasync); // a lower file is never written: nothing to sync
  }

  release(fh: number): void {
    this.handles.releaseFile(fh);
  }

  /**
   * A handle's file may be passed through when no copy-up can replace it: it is in the writable branch,
   * or there is none — or `lower` mode accepts that a read-only handle keeps reading the lower file. It
   * is preferred when writing it changes nothing else the union answers for: one name only (no other
   * names' caches to invalidate) and no set-id bit (cleared on writes by non-owners).
   */
  passthrough(fh: number): BackingFile | undefined {
    const mode = this.opts.passthrough ?? "auto";
    if (mode === "off") return undefined;
    const f = this.handles.file(fh);
    const final = this.upper === undefined || f.layer === this.upper.index;
    if (!final && mode !== "lower") return undefined;
    const fd = f.file.fd;
    if (fd === undefined) return undefined;
    const st = f.file.fstat();
    if ((Number(st.mode) & S_IFMT) !== S_IFREG) return undefined;
    const quiet = st.nlink === 1n && (Number(st.mode) & SETID_BITS) === 0;
    return { fd, dev: st.dev, ino: st.ino, preferred: quiet || !final || this.upper === undefined };
  }

  /** Only the writable layer's files change access times, and only through handles that can read. */
  accessTouch(fh: number): AccessTouch {
    const f = this.handles.file(fh);
    if (f.layer !== this.upper?.index || (f.flags & O_ACCMODE) === O_WRONLY || f.flags & O_NOATIME)
      return "none";
    const mode = (this.opts.atime ?? DEFAULT_ATIME).files;
    if (mode === "noatime") return "none";
    if (mode === "strictatime") return "every";
    return touchOf(mode, f.file.fstat(), BigInt(Date.now()) * 1_000_000n);
  }

  listingsTouchEveryTime(): boolean {
    return this.upper !== undefined && (this.opts.atime ?? DEFAULT_ATIME).dirs === "strictatime";
  }

  killSuidgid(fh: number): boolean {
    const upper = this.handles.file(fh).upper;
    return upper !== undefined && clearSetid(upper); // only top-layer files are ever written
  }

  fallocate(fh: number, mode: number, offset: bigint, length: bigint): void {
    this.writableFile(fh).fallocate(mode, offset, length);
  }

  lseek(fh: number, offset: bigint, whence: number): bigint {
    return seekFile(this.handles.file(fh).file, offset, whence);
  }

  /** The writable layer's file behind `fh`; EBADF for a lower file (opened read-only). */
  private writableFile(fh: number): WritableFile {
    const upper = this.handles.file(fh).upper;
    if (upper === undefined) throw fsError("EBADF", `file ${fh} is not open for writing`);
    return upper;
  }

  // ---- directories ---------------------------------------------------------------------------------

  opendir(path: string, opts?: { internal?: boolean }): number {
    const r = this.need(path);
    const dirLayers = r.dirLayers;
    if (!dirLayers) throw fsError("ENOTDIR", path);
    const access = opts?.internal !== true;
    return this.handles.addDir(() => this.listingOf(path, dirLayers, access));
  }

  /**
   * The merged listing of directory `path`; empty once it has been removed (as getdents gives). With
   * `access`, reading it counts as a caller's access to the writable layer's directory (atime).
   */
  private listingOf(path: string, dirLayers: readonly number[], access: boolean): DirEntry[] {
    try {
      return mergedListing(this.layers, dirLayers, relOf(path), this.resolver.lowerDirs, access);
    } catch (err) {
      if (isAbsent(err)) return [];
      throw err;
    }
  }

  readdir(dh: number): readonly DirEntry[] {
    return this.handles.dir(dh);
  }

  releasedir(dh: number): void {
    this.handles.releaseDir(dh);
  }

  statfs(_path: string): StatFs {
    return statFsOf(this.layer(0));
  }

  // ---- extended attributes -------------------------------------------------------------------------

  setxattr(path: string, name: string, value: Buffer, flags: number, opts?: { killSgid?: boolean }): void {
    this.xattrsAllowed();
    if (isPrivateXattr(name)) throw fsError("EPERM", `reserved attribute ${name}`);
    const upper = this.writable();
    const rel = this.copyUpAny(path);
    upper.setxattr(rel, name, value, flags);
    if (opts?.killSgid !== true) return;
    const mode = Number(upper.lstat(rel).mode);
    if (mode & S_ISGID) upper.chmod(rel, mode & ~S_ISGID & 0o7777);
  }

  getxattr(path: string, name: string): Buffer {
    if (isAclXattr(name)) return this.getAcl(path, name);
    this.xattrsAllowed();
    const r = this.need(path);
    if (isPrivateXattr(name)) throw fsError("ENODATA", name);
    return this.layer(r.layer).getxattr(relOf(path), name);
  }

  /** An ACL, else ENODATA, also where there can be none (noxattrs, a layer without ACL support). */
  private getAcl(path: string, name: string): Buffer {
    const r = this.need(path);
    try {
      if (!this.opts.noXattrs) return this.layer(r.layer).getxattr(relOf(path), name);
    } catch (err) {
      if (!isNoAcl(err)) throw err;
    }
    throw fsError("ENODATA", `${path}: no ${name}`);
  }

  listxattr(path: string): string[] {
    this.xattrsAllowed();
    const r = this.need(path);
    return this.layer(r.layer)
      .listxattr(relOf(path))
      .filter((n) => !isPrivateXattr(n));
  }

  removexattr(path: string, name: string): void {
    this.xattrsAllowed();
    if (isPrivateXattr(name)) throw fsError("ENODATA", name);
    const r = this.need(path);
    // Removing an attribute the object does not have must not copy it up.
    this.layer(r.layer).getxattr(relOf(path), name);
    this.writable().removexattr(this.copyUpAny(path), name);
  }

  private xattrsAllowed(): void {
    if (this.opts.noXattrs) throw fsError("EOPNOTSUPP", "extended attributes are off (noxattrs)");
  }

  destroy(): void {
    this.copier?.close();
    this.handles.closeAll();
    for (const layer of this.layers) layer.close();
    this.work?.close();
  }
}
