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
import {
  aufsWriter,
  discard,
  dropAufsWhiteout,
  isReservedName,
  isWhiteoutEntry,
  type WhiteoutWriter,
} from "../whiteout";
import { InoMapper, toAttr } from "./attr";
import { IdMap } from "./idmap";
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

/** Behaviour switches of a union beyond its layers. */
export interface UnionOptions {
  uids?: IdMap;
  gids?: IdMap;
  noXattrs?: boolean;
  noFsync?: boolean;
}

export class Union implements UnionOps {
  private readonly uids: IdMap;
  private readonly gids: IdMap;
  private readonly upper: Layer | undefined;
  private readonly resolver: Resolver;
  private readonly inos: InoMapper;
  private readonly handles = new Handles();
  /** A fresh path in the work dir (for copies under construction and entries being deleted). */
  private readonly temp = (): string => (this.work as WorkDir).tempPath();
  /** Bumped by every copy-up, so read-only handles on lower files know to look for a newer copy. */
  private copyUpEpoch = 0;

  constructor(
    readonly layers: readonly Layer[],
    private readonly work: WorkDir | undefined,
    private readonly wh: WhiteoutWriter = aufsWriter,
    private readonly opts: UnionOptions = {},
  ) {
    const top = layers[0];
    if (!top) throw fsError("EINVAL", "a union needs at least one layer");
    this.upper = top.writable ? top : undefined;
    if (this.upper && !work) throw fsError("EINVAL", "a writable union needs a work dir");
    this.resolver = new Resolver(layers);
    this.inos = new InoMapper(layers);
    this.uids = opts.uids ?? new IdMap();
    this.gids = opts.gids ?? new IdMap();
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
    return this.shown(toAttr(r.st, this.inoOf(path, r)));
  }

  /** Attributes with ownership as the mount shows it (uid/gid mapping, squashing). */
  private shown(a: Attr): Attr {
    if (!this.uids.identity) a.uid = this.uids.toShown(a.uid);
    if (!this.gids.identity) a.gid = this.gids.toShown(a.gid);
    return a;
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

  /** Checks that `path` can be created and copies its parent up. */
  private prepareCreate(path: string): void {
    this.writable();
    const [dir, name] = splitPath(path);
    if (isReservedName(name)) throw fsError("EPERM", `names starting with .wh. are reserved: ${path}`);
    if (!this.resolver.dirLayersOf(dir)) throw fsError("ENOENT", dir);
    if (this.resolver.resolve(path)) throw fsError("EEXIST", path);
    this.ensureUpperDir(dir);
  }

  /**
   * Creates a new top-layer entry at `path` with `build(abs)`. Over an overlay-format whiteout the entry
   * is built in the work dir and swapped in with RENAME_EXCHANGE, so the name never shows the lower
   * object in between; with `viaWork` it is built there and renamed into place (complete before it is
   * visible). An aufs whiteout for the name is dropped last (an entry beats a whiteout meanwhile).
   */
  private createAt(path: string, build: (abs: string) => void, viaWork = false): void {
    const upper = this.writable();
    const [dir, name] = splitPath(path);
    const rel = relOf(path);
    const target = upper.abs(rel);
    const st = upper.tryLstat(rel);
    const overWhiteout = st !== undefined && isWhiteoutEntry(upper, relOf(dir), rel, st);
    if (overWhiteout || viaWork) {
      const tmp = this.temp();
      try {
        build(tmp);
        if (overWhiteout) sys.renameat2(tmp, target, RENAME_EXCHANGE);
        else fs.renameSync(bytesOf(tmp), bytesOf(target));
      } finally {
        fs.rmSync(bytesOf(tmp), { recursive: true, force: true });
      }
    } else {
      build(target);
    }
    dropAufsWhiteout(upper.abs(relOf(dir)), name);
  }

  /** New objects belong to the caller; the group comes from a set-group-ID parent directory. */
  private own(abs: string, path: string, caller: Caller): void {
    const parent = this.writable().lstat(relOf(splitPath(path)[0]));
    const uid = this.uids.toDisk(caller.uid);
    const gid = Number(parent.mode) & S_ISGID ? Number(parent.gid) : this.gids.toDisk(caller.gid);
    if (uid !== 0 || gid !== 0) fs.lchownSync(bytesOf(abs), uid, gid);
  }

  /** A directory appearing where a lower directory was deleted must hide that directory's contents. */
  private needsOpaque(path: string): boolean {
    const b = this.below(path);
    return b !== undefined && b.dirLayers !== undefined;
  }

  mknod(path: string, mode: number, rdev: number, caller: Caller): Attr {
    this.prepareCreate(path);
    const type = mode & S_IFMT;
    if (type === S_IFDIR) throw fsError("EINVAL", "mknod of a directory");
    this.createAt(path, (abs) => {
      if (type === S_IFREG || type === 0) fs.closeSync(fs.openSync(bytesOf(abs), "wx", mode & 0o7777));
      else sys.mknod(abs, mode, rdev);
      this.own(abs, path, caller);
    });
    return this.getattr(path);
  }

  mkdir(path: string, mode: number, caller: Caller): Attr {
    this.prepareCreate(path);
    const opaque = this.needsOpaque(path);
    this.createAt(
      path,
      (abs) => {
        fs.mkdirSync(bytesOf(abs), { mode: mode & 0o7777 });
        if (opaque) this.wh.makeOpaque(abs);
        this.own(abs, path, caller);
      },
      opaque,
    );
    this.resolver.invalidate();
    return this.getattr(path);
  }

  symlink(target: string, path: string, caller: Caller): Attr {
    this.prepareCreate(path);
    this.createAt(path, (abs) => {
      fs.symlinkSync(bytesOf(target), bytesOf(abs));
      this.own(abs, path, caller);
    });
    return this.getattr(path);
  }

  link(existing: string, newPath: string): Attr {
    const src = this.need(existing);
    if (src.dirLayers) throw fsError("EPERM", `cannot hard-link a directory: ${existing}`);
    this.prepareCreate(newPath);
    this.copyUpFile(existing, src, true);
    const from = this.writable().abs(relOf(existing));
    this.createAt(newPath, (abs) => fs.linkSync(bytesOf(from), bytesOf(abs)));
    return this.getattr(newPath);
  }

  // ---- deleting names ------------------------------------------------------------------------------

  unlink(path: string): void {
    const upper = this.writable();
    const r = this.need(path);
    if (r.dirLayers) throw fsError("EISDIR", path);
    this.removeName(path, r.layer === upper.index, false);
  }

  rmdir(path: string): void {
    const upper = this.writable();
    if (path === "/") throw fsError("EBUSY", "cannot remove the root");
    const r = this.need(path);
    if (!r.dirLayers) throw fsError("ENOTDIR", path);
    if (mergedListing(this.layers, r.dirLayers, relOf(path)).length > 0) throw fsError("ENOTEMPTY", path);
    this.removeName(path, r.dirLayers[0] === upper.index, true);
    this.resolver.invalidate();
  }

  /** Removes the top-layer entry (if `upperHas`) and whites the name out when a lower layer has it. */
  private removeName(path: string, upperHas: boolean, isDir: boolean): void {
    const upper = this.writable();
    const [dir, name] = splitPath(path);
    if (this.below(path)) {
      this.ensureUpperDir(dir);
      this.wh.remove(upper.abs(relOf(dir)), name, upperHas, this.temp);
    } else if (upperHas) {
      if (isDir) discard(upper.abs(relOf(path)), this.temp);
      else upper.unlink(relOf(path));
    }
  }

  rename(from: string, to: string, flags: number): void {
    const exchange = (flags & RENAME_EXCHANGE) !== 0;
    if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) || (exchange && flags & RENAME_NOREPLACE)) {
      throw fsError("EINVAL", `rename flags ${flags}`);
    }
    this.writable();
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
    this.renameInTop(from, to, src.dirLayers !== undefined, dst);
    if (src.dirLayers || dst?.dirLayers) this.resolver.invalidate();
  }

  /** The rename itself, once `from` lives entirely in the top layer and `to`'s parent exists there. */
  private renameInTop(from: string, to: string, isDir: boolean, dst: Resolved | undefined): void {
    const upper = this.writable();
    const [fromDir, fromName] = splitPath(from);
    const [toDir, toName] = splitPath(to);
    const fromAbs = upper.abs(relOf(from));
    const toAbs = upper.abs(relOf(to));
    if (dst?.dirLayers?.[0] === upper.index) this.clearMarkers(relOf(to));
    if (isDir && this.needsOpaque(to)) this.wh.makeOpaque(fromAbs);
    const needWhiteout = this.below(from) !== undefined;
    const toSt = upper.tryLstat(relOf(to));
    if (isDir && toSt && isWhiteoutEntry(upper, relOf(toDir), relOf(to), toSt)) {
      // A directory cannot replace a whiteout entry by rename: swap them; the whiteout lands on `from`.
      sys.renameat2(fromAbs, toAbs, RENAME_EXCHANGE);
      if (!needWhiteout) fs.unlinkSync(bytesOf(fromAbs));
    } else if (needWhiteout) {
      this.wh.renameWithWhiteout(upper.abs(relOf(fromDir)), fromName, toAbs, this.temp);
    } else {
      upper.rename(relOf(from), relOf(to));
    }
    dropAufsWhiteout(upper.abs(relOf(toDir)), toName);
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
      const entryRel = `${rel}/${e.name}`;
      if (isReservedName(e.name) || isWhiteoutEntry(upper, rel, entryRel, upper.lstat(entryRel))) {
        fs.rmSync(bytesOf(upper.abs(entryRel)), { recursive: true, force: true });
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
    if (req.uid !== undefined || req.gid !== undefined) {
      const uid = req.uid === undefined ? -1 : this.uids.toDisk(req.uid);
      const gid = req.gid === undefined ? -1 : this.gids.toDisk(req.gid);
      upper.lchown(rel, uid, gid);
    }
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
    this.prepareCreate(path);
    const upper = this.writable();
    let fd = -1;
    this.createAt(path, (abs) => {
      fd = fs.openSync(bytesOf(abs), (flags & PASSED_OPEN_FLAGS) | O_CREAT | O_EXCL, mode & 0o7777);
      this.own(abs, path, caller);
    });
    const fh = this.handles.addFile({ fd, path, layer: upper.index, flags, epoch: this.copyUpEpoch });
    return { fh, attr: this.getattr(path, fh) };
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
    if (this.opts.noFsync) return;
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
    this.xattrsAllowed();
    if (isPrivateXattr(name)) throw fsError("EPERM", `reserved attribute ${name}`);
    this.writable().setxattr(this.copyUpAny(path), name, value, flags);
  }

  getxattr(path: string, name: string): Buffer {
    this.xattrsAllowed();
    const r = this.need(path);
    if (isPrivateXattr(name)) throw fsError("ENODATA", name);
    return this.layer(r.layer).getxattr(relOf(path), name);
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
    this.handles.closeAll();
  }
}
