/**
 * The union: layers stacked top first, served as one tree through syscall-shaped methods.
 *
 * Invariants:
 * - Only the top layer is ever written, and only when it is writable; otherwise every change is EROFS.
 * - Anything changed that lives in a lower layer is copied up first (parents before children), through
 *   the work dir, so the lower layers stay byte-for-byte unchanged.
 * - Deleting a name that a lower layer still provides leaves a whiteout. Crash ordering: a whiteout is
 *   written before the upper entry it replaces is removed, and a new upper entry is created before the
 *   whiteout it replaces is removed (an entry beats a whiteout in the same layer), so a crash leaves the
 *   old or the new view, never one with the lower object resurrected.
 * - A directory created (or renamed) where a lower directory was deleted is opaque.
 * - Calls are synchronous and the transport serves one request at a time: operations on one path are
 *   therefore serialised.
 */
import * as fs from "node:fs";
import { fsError } from "../errors";
import type { Layer } from "../layer";
import { copyUp, readOrigin, WorkDir } from "../cow";
import { bytesOf } from "../sys/bytes";
import * as sys from "../sys/libc";
import { aufsWriter, isOverlayWhiteout, isReservedName, type WhiteoutWriter } from "../whiteout";
import { InoMapper, toAttr } from "./attr";
import { Handles, type OpenFile } from "./handles";
import { mergedListing } from "./listing";
import { materialize } from "./materialize";
import { isDirStat, relOf, Resolver, splitPath, type Resolved } from "./resolve";
import {
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  type Attr,
  type Caller,
  type DirEntry,
  type SetAttrRequest,
  type StatFs,
  type UnionOps,
} from "./types";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_ISGID = 0o2000;
const O_ACCMODE = 3;
const { O_RDONLY, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_SYNC, O_DSYNC, O_NOATIME, O_NONBLOCK } = fs.constants;
/** open(2) flags passed through to the layer file; O_DIRECT is dropped (our buffers are not aligned). */
const PASSED_OPEN_FLAGS = O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME | O_NONBLOCK;

/** Extended attributes that are layer bookkeeping, never shown or copied. */
export function isPrivateXattr(name: string): boolean {
  return (
    name.startsWith("trusted.overlay.") ||
    name.startsWith("user.overlay.") ||
    name.startsWith("trusted.unionfs.")
  );
}

export class Union implements UnionOps {
  private readonly upper: Layer | undefined;
  private readonly resolver: Resolver;
  private readonly inos: InoMapper;
  private readonly handles = new Handles();
  /** Bumped by every copy-up, so read-only handles on lower files know to look for a newer copy. */
  private copyUpEpoch = 0;

  constructor(
    readonly layers: readonly Layer[],
    private readonly work: WorkDir | undefined,
    private readonly wh: WhiteoutWriter = aufsWriter,
  ) {
    const top = layers[0];
    if (!top) throw fsError("EINVAL", "a union needs at least one layer");
    this.upper = top.writable ? top : undefined;
    if (this.upper && !work) throw fsError("EINVAL", "a writable union needs a work dir");
    this.resolver = new Resolver(layers);
    this.inos = new InoMapper(layers);
  }

  // ---- lookups -------------------------------------------------------------------------------------

  private need(path: string): Resolved {
    const r = this.resolver.resolve(path);
    if (!r) throw fsError("ENOENT", path);
    return r;
  }

  private layer(i: number): Layer {
    return this.layers[i] as Layer;
  }

  private writable(): Layer {
    if (!this.upper) throw fsError("EROFS", "the union has no writable branch");
    return this.upper;
  }

  private attrOf(path: string, r: Resolved): Attr {
    return toAttr(r.st, this.inoOf(path, r));
  }

  /**
   * The inode number the union reports: a copied-up object keeps the number of its original (recorded
   * at copy-up), and a merged directory reports its bottom-most layer's, so copy-up never changes it.
   */
  private inoOf(path: string, r: Resolved): bigint {
    if (!r.dirLayers && r.layer === this.upper?.index) {
      return readOrigin(this.upper.abs(relOf(path))) ?? this.inos.ino(r.st);
    }
    let ino = this.inos.ino(r.st);
    const bottom = r.dirLayers?.[r.dirLayers.length - 1];
    if (bottom !== undefined && bottom !== r.layer) {
      const st = this.layer(bottom).tryLstat(relOf(path));
      if (st) ino = this.inos.ino(st);
    }
    return ino;
  }

  /** Is something provided at `path` by a layer below the top one (ignoring the top layer's whiteouts)? */
  private below(path: string): Resolved | undefined {
    if (path === "/") return undefined;
    const [dir, name] = splitPath(path);
    return this.resolver.lookupBelow(dir, name, 0);
  }

  getattr(path: string, fh?: number): Attr {
    const f = this.handles.maybeFile(fh);
    if (f) {
      const st = fs.fstatSync(f.fd, { bigint: true });
      const r = this.resolver.resolve(path);
      return r && !isDirStat(r.st) && r.st.ino === st.ino
        ? this.attrOf(path, r)
        : toAttr(st, this.inos.ino(st));
    }
    return this.attrOf(path, this.need(path));
  }

  readlink(path: string): string {
    const r = this.need(path);
    if ((Number(r.st.mode) & S_IFMT) !== S_IFLNK) throw fsError("EINVAL", path);
    return this.layer(r.layer).readlink(relOf(path));
  }

  access(path: string, mask: number): void {
    this.need(path);
    if (mask & fs.constants.W_OK && !this.upper) throw fsError("EROFS", path);
  }

  // ---- copy-up -------------------------------------------------------------------------------------

  /** Makes sure directory `path` exists in the writable layer, copying it (and its parents) up. */
  private ensureUpperDir(path: string): void {
    const upper = this.writable();
    const dirLayers = this.resolver.dirLayersOf(path);
    if (!dirLayers) throw fsError("ENOENT", path);
    if (dirLayers[0] === upper.index) return;
    this.ensureUpperDir(splitPath(path)[0]);
    this.copyUpObject(path, this.need(path), true);
    this.resolver.invalidate();
  }

  /** Copies the non-directory at `path` up (its parent first). No-op when it is already in the top layer. */
  private copyUpFile(path: string, r: Resolved, withData: boolean): void {
    if (r.layer === this.writable().index) return;
    this.ensureUpperDir(splitPath(path)[0]);
    this.copyUpObject(path, r, withData);
  }

  private copyUpObject(path: string, r: Resolved, withData: boolean): void {
    const upper = this.writable();
    copyUp(this.layer(r.layer), relOf(path), r.st, upper, this.work as WorkDir, {
      withData,
      skipXattr: isPrivateXattr,
      origin: r.dirLayers ? undefined : this.inos.ino(r.st),
    });
    this.copyUpEpoch++;
  }

  /** Copies up whatever `path` is (file or directory); returns its layer-relative path. */
  private copyUpAny(path: string): string {
    const r = this.need(path);
    if (r.dirLayers) this.ensureUpperDir(path);
    else this.copyUpFile(path, r, true);
    return relOf(path);
  }

  // ---- creating names ------------------------------------------------------------------------------

  /** Checks that `path` can be created and copies its parent up. Returns [parent, name]. */
  private prepareCreate(path: string): [string, string] {
    this.writable();
    const [dir, name] = splitPath(path);
    if (isReservedName(name)) throw fsError("EPERM", `names starting with .wh. are reserved: ${path}`);
    if (!this.resolver.dirLayersOf(dir)) throw fsError("ENOENT", dir);
    if (this.resolver.resolve(path)) throw fsError("EEXIST", path);
    this.ensureUpperDir(dir);
    return [dir, name];
  }

  /** After a new entry exists in the top layer: drop the whiteout it replaces. */
  private finishCreate(dir: string, name: string): void {
    this.wh.remove(this.writable().abs(relOf(dir)), name);
  }

  /** New objects belong to the caller; the group comes from a set-group-ID parent directory. */
  private own(path: string, caller: Caller): void {
    const upper = this.writable();
    const parent = upper.lstat(relOf(splitPath(path)[0]));
    const gid = Number(parent.mode) & S_ISGID ? Number(parent.gid) : caller.gid;
    if (caller.uid !== 0 || gid !== 0) upper.lchown(relOf(path), caller.uid, gid);
  }

  /** A directory appearing where a lower directory was deleted must hide that directory's contents. */
  private needsOpaque(path: string): boolean {
    const b = this.below(path);
    return b !== undefined && b.dirLayers !== undefined;
  }

  mknod(path: string, mode: number, rdev: number, caller: Caller): Attr {
    const [dir, name] = this.prepareCreate(path);
    const upper = this.writable();
    const type = mode & S_IFMT;
    if (type === S_IFDIR) throw fsError("EINVAL", "mknod of a directory");
    if (type === S_IFREG || type === 0) {
      fs.closeSync(upper.open(relOf(path), fs.constants.O_WRONLY | O_CREAT | O_EXCL, mode & 0o7777));
    } else {
      upper.mknod(relOf(path), mode, rdev);
    }
    this.own(path, caller);
    this.finishCreate(dir, name);
    return this.getattr(path);
  }

  mkdir(path: string, mode: number, caller: Caller): Attr {
    const [dir, name] = this.prepareCreate(path);
    const upper = this.writable();
    if (this.needsOpaque(path)) {
      const tmp = (this.work as WorkDir).tempPath();
      fs.mkdirSync(bytesOf(tmp), { mode: mode & 0o7777 });
      this.wh.makeOpaque(tmp);
      fs.renameSync(bytesOf(tmp), bytesOf(upper.abs(relOf(path))));
    } else {
      upper.mkdir(relOf(path), mode & 0o7777);
    }
    this.own(path, caller);
    this.finishCreate(dir, name);
    this.resolver.invalidate();
    return this.getattr(path);
  }

  symlink(target: string, path: string, caller: Caller): Attr {
    const [dir, name] = this.prepareCreate(path);
    this.writable().symlink(target, relOf(path));
    this.own(path, caller);
    this.finishCreate(dir, name);
    return this.getattr(path);
  }

  link(existing: string, newPath: string): Attr {
    const src = this.need(existing);
    if (src.dirLayers) throw fsError("EPERM", `cannot hard-link a directory: ${existing}`);
    const [dir, name] = this.prepareCreate(newPath);
    this.copyUpFile(existing, src, true);
    this.writable().link(relOf(existing), relOf(newPath));
    this.finishCreate(dir, name);
    return this.getattr(newPath);
  }

  // ---- deleting names ------------------------------------------------------------------------------

  unlink(path: string): void {
    const upper = this.writable();
    const r = this.need(path);
    if (r.dirLayers) throw fsError("EISDIR", path);
    this.removeName(path, () => {
      if (r.layer === upper.index) upper.unlink(relOf(path));
    });
  }

  rmdir(path: string): void {
    const upper = this.writable();
    if (path === "/") throw fsError("EBUSY", "cannot remove the root");
    const r = this.need(path);
    if (!r.dirLayers) throw fsError("ENOTDIR", path);
    if (mergedListing(this.layers, r.dirLayers, relOf(path)).length > 0) throw fsError("ENOTEMPTY", path);
    this.removeName(path, () => {
      if (r.dirLayers?.[0] === upper.index) this.removeUpperDir(relOf(path));
    });
    this.resolver.invalidate();
  }

  /** Whiteout first (when a lower layer provides the name), then the upper entry. */
  private removeName(path: string, removeUpper: () => void): void {
    const [dir, name] = splitPath(path);
    if (this.below(path)) {
      this.ensureUpperDir(dir);
      this.wh.write(this.writable().abs(relOf(dir)), name);
    }
    removeUpper();
  }

  /** Removes an upper directory whose merged view is empty: only format markers can be left in it. */
  private removeUpperDir(rel: string): void {
    const upper = this.writable();
    for (const e of upper.readdir(rel)) {
      const st = upper.lstat(`${rel}/${e.name}`);
      if (!isReservedName(e.name) && !isOverlayWhiteout(st)) throw fsError("ENOTEMPTY", rel);
      fs.rmSync(bytesOf(upper.abs(`${rel}/${e.name}`)), { recursive: true, force: true });
    }
    upper.rmdir(rel);
  }

  rename(from: string, to: string, flags: number): void {
    const upper = this.writable();
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || (exchange && flags & RENAME_NOREPLACE)) {
      throw fsError("EINVAL", `rename flags ${flags}`);
    }
    const src = this.need(from);
    const [toDir, toName] = splitPath(to);
    if (isReservedName(toName)) throw fsError("EPERM", `names starting with .wh. are reserved: ${to}`);
    if (!this.resolver.dirLayersOf(toDir)) throw fsError("ENOENT", toDir);
    const dst = this.resolver.resolve(to);
    if (exchange) return this.exchange(from, src, to, dst);
    if (dst && flags & RENAME_NOREPLACE) throw fsError("EEXIST", to);
    if (from === to) return;
    this.checkRenameTypes(from, src, to, dst);
    this.moveToTop(from, src);
    this.ensureUpperDir(toDir);
    if (dst?.dirLayers?.[0] === upper.index) this.clearMarkers(relOf(to));
    if (src.dirLayers && this.needsOpaque(to)) this.wh.makeOpaque(upper.abs(relOf(from)));
    const [fromDir, fromName] = splitPath(from);
    if (this.below(from)) this.wh.write(upper.abs(relOf(fromDir)), fromName);
    upper.rename(relOf(from), relOf(to));
    this.finishCreate(toDir, toName);
    if (src.dirLayers || dst?.dirLayers) this.resolver.invalidate();
  }

  /** RENAME_EXCHANGE: both names move to the top layer first, then swap in one renameat2. */
  private exchange(from: string, src: Resolved, to: string, dst: Resolved | undefined): void {
    if (!dst) throw fsError("ENOENT", to);
    if (from === to) return;
    const upper = this.writable();
    this.moveToTop(from, src);
    this.moveToTop(to, this.need(to));
    // A directory arriving where a lower directory lies below must not merge with it.
    if (src.dirLayers && this.needsOpaque(to)) this.wh.makeOpaque(upper.abs(relOf(from)));
    if (dst.dirLayers && this.needsOpaque(from)) this.wh.makeOpaque(upper.abs(relOf(to)));
    upper.rename(relOf(from), relOf(to), RENAME_EXCHANGE);
    this.resolver.invalidate();
  }

  /** Puts the object at `path` entirely in the top layer: copy-up for files, materialize for dirs. */
  private moveToTop(path: string, r: Resolved): void {
    if (!r.dirLayers) return this.copyUpFile(path, r, true);
    materialize(
      {
        layers: this.layers,
        upper: this.writable(),
        work: this.work as WorkDir,
        resolver: this.resolver,
        wh: this.wh,
        skipXattr: isPrivateXattr,
        inoOf: (st) => this.inos.ino(st),
        ensureUpperDir: (p) => this.ensureUpperDir(p),
      },
      path,
      splitPath(path)[0],
      r,
    );
    this.copyUpEpoch++;
  }

  private checkRenameTypes(from: string, src: Resolved, to: string, dst: Resolved | undefined): void {
    if (!dst) return;
    if (src.dirLayers && !dst.dirLayers) throw fsError("ENOTDIR", to);
    if (!src.dirLayers && dst.dirLayers) throw fsError("EISDIR", to);
    if (dst.dirLayers && mergedListing(this.layers, dst.dirLayers, relOf(to)).length > 0) {
      throw fsError("ENOTEMPTY", to);
    }
    if (to.startsWith(`${from}/`)) throw fsError("EINVAL", `cannot move ${from} into itself`);
  }

  /** Empties an upper directory of whiteouts and markers (its merged view is already empty). */
  private clearMarkers(rel: string): void {
    const upper = this.writable();
    for (const e of upper.readdir(rel)) {
      if (isReservedName(e.name) || isOverlayWhiteout(upper.lstat(`${rel}/${e.name}`))) {
        fs.rmSync(bytesOf(upper.abs(`${rel}/${e.name}`)), { recursive: true, force: true });
      }
    }
  }

  // ---- attributes ----------------------------------------------------------------------------------

  setattr(path: string, req: SetAttrRequest, fh?: number): Attr {
    const upper = this.writable();
    const f = this.handles.maybeFile(fh);
    const r = this.need(path);
    if (r.dirLayers) this.ensureUpperDir(path);
    else this.copyUpFile(path, r, req.size !== 0n);
    const rel = relOf(path);
    if (req.size !== undefined) {
      if (f && f.layer === upper.index && (f.flags & O_ACCMODE) !== O_RDONLY)
        fs.ftruncateSync(f.fd, Number(req.size));
      else upper.truncate(rel, req.size);
    }
    if (req.uid !== undefined || req.gid !== undefined) upper.lchown(rel, req.uid ?? -1, req.gid ?? -1);
    if (req.mode !== undefined && (Number(r.st.mode) & S_IFMT) !== S_IFLNK) upper.chmod(rel, req.mode);
    if (req.atime !== undefined || req.mtime !== undefined) upper.utimens(rel, req.atime, req.mtime);
    return this.getattr(path);
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
    const fd = this.layer(layer).open(relOf(path), flags & PASSED_OPEN_FLAGS);
    return this.handles.addFile({ fd, path, layer, flags, epoch: this.copyUpEpoch });
  }

  create(path: string, flags: number, mode: number, caller: Caller): { fh: number; attr: Attr } {
    if (this.resolver.resolve(path)) {
      if (flags & O_EXCL) throw fsError("EEXIST", path);
      const fh = this.open(path, flags & ~O_CREAT);
      return { fh, attr: this.getattr(path, fh) };
    }
    const [dir, name] = this.prepareCreate(path);
    const upper = this.writable();
    const fd = upper.open(relOf(path), (flags & PASSED_OPEN_FLAGS) | O_CREAT | O_EXCL, mode & 0o7777);
    const fh = this.handles.addFile({ fd, path, layer: upper.index, flags, epoch: this.copyUpEpoch });
    this.own(path, caller);
    this.finishCreate(dir, name);
    return { fh, attr: this.getattr(path) };
  }

  read(fh: number, length: number, position: bigint): Buffer {
    const f = this.handles.file(fh);
    if (f.epoch !== this.copyUpEpoch) this.followCopyUp(f);
    const buf = Buffer.allocUnsafe(length);
    const n = fs.readSync(f.fd, buf, 0, length, position);
    return buf.subarray(0, n);
  }

  /**
   * A read-only handle opened on a lower file before that file was copied up reads the copy from now
   * on, so it sees writes made through other handles (overlayfs does not: docker/for-linux#72).
   */
  private followCopyUp(f: OpenFile): void {
    f.epoch = this.copyUpEpoch;
    if (!this.upper || f.layer === this.upper.index) return;
    const r = this.resolver.resolve(f.path);
    if (!r || r.dirLayers || r.layer !== this.upper.index) return;
    const mine = this.inos.ino(fs.fstatSync(f.fd, { bigint: true }));
    if (readOrigin(this.upper.abs(relOf(f.path))) !== mine) return;
    const fd = this.upper.open(relOf(f.path), fs.constants.O_RDONLY);
    fs.closeSync(f.fd);
    f.fd = fd;
    f.layer = this.upper.index;
  }

  write(fh: number, data: Buffer, position: bigint): number {
    const f = this.handles.file(fh);
    return fs.writeSync(f.fd, data, 0, data.length, Number(position));
  }

  flush(fh: number): void {
    this.handles.file(fh);
  }

  fsync(fh: number, datasync: boolean): void {
    const f = this.handles.file(fh);
    if (datasync) fs.fdatasyncSync(f.fd);
    else fs.fsyncSync(f.fd);
  }

  release(fh: number): void {
    this.handles.releaseFile(fh);
  }

  fallocate(fh: number, mode: number, offset: bigint, length: bigint): void {
    sys.fallocate(this.handles.file(fh).fd, mode, offset, length);
  }

  lseek(fh: number, offset: bigint, whence: number): bigint {
    return sys.lseek(this.handles.file(fh).fd, offset, whence);
  }

  // ---- directories ---------------------------------------------------------------------------------

  opendir(path: string): number {
    const r = this.need(path);
    if (!r.dirLayers) throw fsError("ENOTDIR", path);
    return this.handles.addDir(mergedListing(this.layers, r.dirLayers, relOf(path)));
  }

  readdir(dh: number): readonly DirEntry[] {
    return this.handles.dir(dh);
  }

  releasedir(dh: number): void {
    this.handles.releaseDir(dh);
  }

  statfs(_path: string): StatFs {
    const top = this.layer(0);
    const s = fs.statfsSync(bytesOf(top.root), { bigint: true });
    return {
      bsize: Number(s.bsize),
      frsize: Number(s.bsize),
      blocks: s.blocks,
      bfree: s.bfree,
      bavail: s.bavail,
      files: s.files,
      ffree: s.ffree,
      namelen: 255,
    };
  }

  // ---- extended attributes -------------------------------------------------------------------------

  setxattr(path: string, name: string, value: Buffer, flags: number): void {
    if (isPrivateXattr(name)) throw fsError("EPERM", `reserved attribute ${name}`);
    this.writable().setxattr(this.copyUpAny(path), name, value, flags);
  }

  getxattr(path: string, name: string): Buffer {
    const r = this.need(path);
    if (isPrivateXattr(name)) throw fsError("ENODATA", name);
    return this.layer(r.layer).getxattr(relOf(path), name);
  }

  listxattr(path: string): string[] {
    const r = this.need(path);
    return this.layer(r.layer)
      .listxattr(relOf(path))
      .filter((n) => !isPrivateXattr(n));
  }

  removexattr(path: string, name: string): void {
    if (isPrivateXattr(name)) throw fsError("ENODATA", name);
    const r = this.need(path);
    // Removing an attribute the object does not have must not copy it up.
    this.layer(r.layer).getxattr(relOf(path), name);
    this.writable().removexattr(this.copyUpAny(path), name);
  }

  destroy(): void {
    this.handles.closeAll();
  }
}
