/**
 * Open files of the union: open, create, read, write and the calls on an open handle.
 *
 * Invariants:
 * - A file opened for writing is always the top layer's copy (copied up first); a read-only handle on a
 *   lower file follows a later copy-up of that file (`follow`), so it sees writes made through other
 *   handles. Only the writable layer's files are ever written (EBADF otherwise).
 * - Handles made for callers are the only reads that change access times, and only in the writable
 *   layer, as the union's atime policy says (atime.ts); `accessTouch` tells a transport which reads it
 *   must let through for that.
 */
import * as fs from "node:fs";
import { fsError } from "../errors";
import { relOf, seekFile, type WritableFile, type WritableLayer } from "../layer";
import { touchOf, DEFAULT_ATIME, type AccessTouch } from "./atime";
import type { OpenFile } from "./handles";
import type { Namespace } from "./namespace";
import { isDirStat } from "./resolve";
import type { UnionState } from "./state";
import type { Attr, BackingFile, Caller } from "./types";

const S_IFMT = 0o170000;
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
export function withoutSetid(mode: number): number {
  return mode & ~S_ISUID & ~(mode & S_IXGRP ? S_ISGID : 0);
}

/** Clears the set-id bits of an open top-layer file; whether there were any. */
export function clearSetid(file: WritableFile): boolean {
  const mode = Number(file.fstat().mode);
  if (withoutSetid(mode) === mode) return false;
  file.chmod(withoutSetid(mode));
  return true;
}

export class Files {
  constructor(
    private readonly s: UnionState,
    private readonly names: Namespace,
  ) {}

  open(path: string, flags: number): number {
    const r = this.s.need(path);
    if (r.dirLayers) throw fsError("EISDIR", path);
    let layer = r.layer;
    if ((flags & O_ACCMODE) !== O_RDONLY || flags & O_TRUNC) {
      this.s.copyUp(path, r, { data: !(flags & O_TRUNC) });
      layer = this.s.writable().index;
    }
    const [rel, passed] = [relOf(path), flags & PASSED_OPEN_FLAGS];
    const upper = layer === this.s.upper?.index ? this.s.upper.openAccess(rel, passed) : undefined;
    const file = upper ?? this.s.layer(layer).openAccess(rel, passed);
    return this.s.handles.addFile({ file, upper, path, layer, flags, epoch: this.s.epoch });
  }

  create(path: string, flags: number, mode: number, caller: Caller): { fh: number; attr: Attr } {
    if (this.s.lookup.resolve(path)) {
      if (flags & O_EXCL) throw fsError("EEXIST", path);
      const fh = this.open(path, flags & ~O_CREAT);
      return { fh, attr: this.attrOf(path, this.s.handles.file(fh)) };
    }
    this.names.prepareCreate(path, true);
    const upper = this.s.writable();
    const perm = this.names.newMode(path, mode, caller) & 0o7777;
    let file: WritableFile | undefined;
    this.names.createAt(path, (layer, rel) => {
      file = layer.create(rel, (flags & PASSED_OPEN_FLAGS) | O_EXCL, perm);
      this.names.own(layer, rel, path, caller);
    });
    let made = file as WritableFile;
    if ((flags & O_ACCMODE) !== O_WRONLY)
      made = upper.forAccess(relOf(path), made, flags & PASSED_OPEN_FLAGS);
    const fh = this.s.handles.addFile({
      file: made,
      upper: made,
      path,
      layer: upper.index,
      flags,
      epoch: this.s.epoch,
    });
    // A new object has no origin to report: its own inode number, as getattr would find it.
    return { fh, attr: this.s.attrs.attrOfStat(made.fstat()) };
  }

  /**
   * Attributes through open handle `f`: its file's (after following a copy-up), with the number the
   * union reports for `path` while `path` still names that file.
   */
  attrOf(path: string, f: OpenFile): Attr {
    this.follow(f);
    const st = f.file.fstat();
    const r = this.s.lookup.resolve(path);
    return r && !isDirStat(r.st) && r.st.ino === st.ino
      ? this.s.attrs.attrOf(path, r)
      : this.s.attrs.attrOfStat(st);
  }

  /**
   * A read-only handle opened on a lower file before that file was copied up reads the copy from now
   * on, so it sees writes made through other handles (overlayfs before Linux 4.19 did not:
   * docker/for-linux#72).
   */
  follow(f: OpenFile): void {
    if (f.epoch === this.s.epoch) return;
    const epoch = this.s.epoch;
    const upper = this.s.upper;
    // The epoch is taken only once the copy is open: a failed open is tried again on the next call.
    if (upper !== undefined && f.layer !== upper.index && this.copiedUp(f, upper)) {
      const file = upper.openAccess(relOf(f.path), O_RDONLY | (f.flags & O_NOATIME));
      (f.retired ??= []).push(f.file); // closed at release: its descriptor may be in use (readFd)
      f.file = file;
      f.upper = file;
      f.layer = upper.index;
    }
    f.epoch = epoch;
  }

  /** Whether `f`'s path now names, in the writable layer, a copy of the very file `f` reads. */
  private copiedUp(f: OpenFile, upper: WritableLayer): boolean {
    const r = this.s.lookup.resolve(f.path);
    if (!r || r.dirLayers || r.layer !== upper.index) return false;
    const mine = this.s.attrs.inos.ino(f.file.fstat());
    return this.s.attrs.origins.read(upper, relOf(f.path)) === mine;
  }

  read(fh: number, length: number, position: bigint): Buffer {
    const f = this.s.handles.file(fh);
    this.follow(f);
    return f.file.read(length, position);
  }

  readInto(fh: number, buf: Buffer, position: bigint): number {
    const f = this.s.handles.file(fh);
    this.follow(f);
    return f.file.readInto(buf, position);
  }

  /**
   * The descriptor `read` reads `fh`'s data from: open until the handle's release, and what `read`
   * reads for as long as the copy-up epoch stays what it is now (a later copy-up may have the handle
   * follow it: `follow`). Undefined for a file with no descriptor (a tar layer's).
   */
  readFd(fh: number): number | undefined {
    const f = this.s.handles.file(fh);
    this.follow(f);
    return f.file.fd;
  }

  write(fh: number, data: Buffer, position: bigint): number {
    return this.writableFile(fh).write(data, position);
  }

  flush(fh: number): void {
    this.s.handles.file(fh);
  }

  fsync(fh: number, datasync: boolean): void {
    const f = this.s.handles.file(fh);
    if (this.s.opts.noFsync) return;
    f.upper?.sync(datasync); // a lower file is never written: nothing to sync
  }

  syncFd(fh: number): number | undefined {
    const f = this.s.handles.file(fh);
    return this.s.opts.noFsync ? undefined : f.upper?.fd;
  }

  release(fh: number): void {
    this.s.handles.releaseFile(fh);
  }

  /**
   * A handle's file may be passed through when no copy-up can replace it: it is in the writable branch,
   * or there is none — or `lower` mode accepts that a read-only handle keeps reading the lower file. It
   * is preferred when writing it changes nothing else the union answers for: one name only (no other
   * names' caches to invalidate) and no set-id bit (cleared on writes by non-owners). Only a file with a
   * real descriptor can be.
   */
  passthrough(fh: number): BackingFile | undefined {
    const mode = this.s.opts.passthrough ?? "auto";
    if (mode === "off") return undefined;
    const f = this.s.handles.file(fh);
    const upper = this.s.upper;
    const final = upper === undefined || f.layer === upper.index;
    if (!final && mode !== "lower") return undefined;
    const fd = f.file.fd;
    if (fd === undefined) return undefined;
    const st = f.file.fstat();
    if ((Number(st.mode) & S_IFMT) !== S_IFREG) return undefined;
    const quiet = st.nlink === 1n && (Number(st.mode) & SETID_BITS) === 0;
    return { fd, dev: st.dev, ino: st.ino, preferred: quiet || !final || upper === undefined };
  }

  /** Only the writable layer's files change access times, and only through handles that can read. */
  accessTouch(fh: number): AccessTouch {
    const f = this.s.handles.file(fh);
    if (f.layer !== this.s.upper?.index || (f.flags & O_ACCMODE) === O_WRONLY || f.flags & O_NOATIME)
      return "none";
    const mode = (this.s.opts.atime ?? DEFAULT_ATIME).files;
    if (mode === "noatime") return "none";
    if (mode === "strictatime") return "every";
    return touchOf(mode, f.file.fstat(), BigInt(Date.now()) * 1_000_000n);
  }

  killSuidgid(fh: number): boolean {
    const upper = this.s.handles.file(fh).upper;
    return upper !== undefined && clearSetid(upper); // only top-layer files are ever written
  }

  fallocate(fh: number, mode: number, offset: bigint, length: bigint): void {
    this.writableFile(fh).fallocate(mode, offset, length);
  }

  lseek(fh: number, offset: bigint, whence: number): bigint {
    return seekFile(this.s.handles.file(fh).file, offset, whence);
  }

  /** The writable layer's file behind `fh`; EBADF for a lower file (opened read-only). */
  private writableFile(fh: number): WritableFile {
    const upper = this.s.handles.file(fh).upper;
    if (upper === undefined) throw fsError("EBADF", `file ${fh} is not open for writing`);
    return upper;
  }
}
