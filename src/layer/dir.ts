/**
 * Directory layers: a layer that is a plain directory on a local filesystem (types.ts has the interface).
 *
 * Invariants:
 * - Relative paths have no length limit: where `root + rel` would be too long for a syscall, the object
 *   is reached through an fd of its parent directory (sys/longpath.ts); short paths pay nothing for it.
 *   `at(rel, fn)` is the only join of the root and a relative path.
 * - A layer holds an fd of its root directory from construction to `close()`. lstat and xattr reads below
 *   the root always go through it (statx, getxattrat, listxattrat on the fd; sys/xattrat.ts); a
 *   read-only layer's other calls go through `/proc/self/fd/N/rel`, so it keeps
 *   working when its path is unmounted lazily or renamed after the union was built (container engines
 *   detach id-mapped lower-layer mounts right after mounting). A writable layer uses its real path for
 *   the other calls: creating through a /proc magic link costs about three times as much, and engines
 *   never detach the upper dir.
 * - A read-only layer has no mutating method, and refuses an open that could change a file (EROFS).
 * - Reading never changes an access time, except through `openAccess`, `readdir(rel, true)` and
 *   `readlink`: those are the union's callers' reads, and change it as the layer's atime policy says
 *   (atime.ts): the union's in the writable layer, noatime in a read-only one (a union gives each
 *   read-only layer a noatime policy, so even the kernel's own reads of it never count). A layer given no
 *   policy (image tools, the work dir) opens everything O_NOATIME.
 * - Listings are timed (cold.ts `timed`; not while the disk was found cold a moment ago): listings that
 *   wait for the disk turn prefetching on (`prefetch`, prefetch.ts). A read-only layer's file opened for
 *   a caller has its first READ_AHEAD bytes read ahead at once (posix_fadvise WILLNEED: no access time
 *   changes; only the file's block map may be waited for, not its data).
 */
import * as fs from "node:fs";
import { fsError, isAbsent, isUnsupported } from "../errors";
import { bytesOf, bstr } from "../sys/bytes";
import * as sys from "../sys/libc";
import { inParent, LONG_PATH, withPath } from "../sys/longpath";
import { statAt, statAtOrThrow } from "../sys/stat";
import { getxattrAt, listxattrAt } from "../sys/xattrat";
import { AccessRoots, listNoatime, openNoatime, type AtimePolicy } from "./atime";
import { AbsentNames } from "./absent";
import { FdFile } from "./file";
import { prefetcher } from "./prefetch";
import type { Layer, LayerFile, LayerStatFs, RawEntry, Stat, WritableFile, WritableLayer } from "./types";

const S_IFMT = 0o170000;
const EMPTY = Buffer.from([0]);
const O_ACCMODE = 3;
/** What a read-only layer reads ahead of a file opened for a caller (the kernel's default window). */
const READ_AHEAD = 128n * 1024n;
const { O_RDONLY, O_DIRECTORY, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;

/** NUL-terminated bytes of a layer-relative path without its leading "/" ("" for the root). */
function relative(rel: string): Buffer {
  const out = Buffer.allocUnsafe(rel.length === 0 ? 1 : rel.length);
  if (rel.length > 0) out.write(rel.slice(1), 0, "latin1");
  out[out.length - 1] = 0;
  return out;
}

/** Map a Dirent to S_IFMT bits without an extra stat. */
function direntType(d: fs.Dirent<Buffer>): number {
  if (d.isFile()) return 0o100000;
  if (d.isDirectory()) return 0o040000;
  if (d.isSymbolicLink()) return 0o120000;
  if (d.isCharacterDevice()) return 0o020000;
  if (d.isBlockDevice()) return 0o060000;
  if (d.isFIFO()) return 0o010000;
  if (d.isSocket()) return 0o140000;
  return 0;
}

export interface DirLayerOptions {
  /** Position in the union (default -1: not a branch). */
  index?: number;
  /** Whether whiteouts in it hide lower layers (default true). */
  honoursWhiteouts?: boolean;
  /** What callers' reads do to access times (atime.ts); none: everything is opened O_NOATIME. */
  atime?: AtimePolicy;
}

/** A read-only directory layer. */
export class DirLayer implements Layer {
  readonly writable: boolean = false;
  readonly index: number;
  readonly honoursWhiteouts: boolean;
  readonly dev: bigint;
  /** The root directory's device and inode number. */
  readonly identity: string;
  /** Byte-string path through which the root is reached (`/proc/self/fd/N` when read-only). */
  protected readonly root: string;
  protected fd: number;
  /** Where callers' reads are opened (undefined: O_NOATIME, and readlink through the root). */
  private readonly access: AccessRoots | undefined;

  /** `origin` is the absolute byte-string path of the layer's root directory. */
  constructor(
    readonly origin: string,
    opts: DirLayerOptions = {},
    byRealPath = false,
  ) {
    this.index = opts.index ?? -1;
    this.honoursWhiteouts = opts.honoursWhiteouts ?? true;
    this.fd = fs.openSync(bytesOf(origin), O_RDONLY | O_DIRECTORY);
    this.root = byRealPath ? origin : `/proc/self/fd/${this.fd}`;
    const st = statAtOrThrow(this.fd, EMPTY);
    this.dev = st.dev;
    this.identity = `dir:${st.dev}:${st.ino}`;
    this.access =
      opts.atime === undefined ? undefined : new AccessRoots({ fd: this.fd, root: this.root }, opts.atime);
  }

  close(): void {
    this.access?.close();
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  /** Calls `fn` with a path that reaches `rel`, valid while `fn` runs (longpath.ts `withPath`). */
  protected at<T>(rel: string, fn: (path: string) => T): T {
    return withPath(this.fd, this.root, rel, fn);
  }

  lstat(rel: string): Stat {
    if (rel.length < LONG_PATH) return statAtOrThrow(this.fd, relative(rel));
    return inParent(this.fd, rel, (dirFd, name) => statAtOrThrow(dirFd, relative(`/${name}`)));
  }

  tryLstat(rel: string): Stat | undefined {
    if (rel.length < LONG_PATH) return statAt(this.fd, relative(rel));
    try {
      return inParent(this.fd, rel, (dirFd, name) => statAt(dirFd, relative(`/${name}`)));
    } catch (err) {
      if (isAbsent(err)) return undefined;
      throw err;
    }
  }

  readdir(rel: string, access = false): RawEntry[] {
    return prefetcher().cold.timed(() => this.list(rel, access));
  }

  private list(rel: string, access: boolean): RawEntry[] {
    const via = access ? this.access?.dirs : undefined;
    if (via === undefined) return this.at(rel, listNoatime);
    const dirents = withPath(via.fd, via.root, rel, (p) =>
      fs.readdirSync(bytesOf(p), { withFileTypes: true, encoding: "buffer" }),
    );
    return dirents.map((d) => ({ name: bstr(d.name), type: direntType(d) & S_IFMT }));
  }

  /** Warms `dirs` on the prefetch threads while listings wait for the disk (prefetch.ts), else nothing. */
  prefetch(rel: string, dirs: readonly string[]): void {
    if (this.fd < 0 || rel.length >= LONG_PATH - 512) return; // a hint: long paths go without
    prefetcher().warm(`${this.root}${rel}`, dirs);
  }

  readlink(rel: string): string {
    const via = this.access?.files ?? { fd: this.fd, root: this.root };
    return bstr(withPath(via.fd, via.root, rel, (p) => fs.readlinkSync(bytesOf(p), { encoding: "buffer" })));
  }

  getxattr(rel: string, name: string): Buffer | undefined {
    if (rel === "") return this.at(rel, (p) => sys.lgetxattrIfAny(p, name));
    return this.below(rel, (dirFd, r) => getxattrAt(dirFd, r, name));
  }

  tryGetxattr(rel: string, name: string): Buffer | undefined {
    if (rel === "") return this.at(rel, (p) => sys.tryLgetxattr(p, name));
    try {
      return this.getxattr(rel, name);
    } catch (err) {
      if (isUnsupported(err)) return undefined;
      throw err;
    }
  }

  listxattr(rel: string): string[] {
    if (rel === "") return this.at(rel, (p) => sys.llistxattr(p));
    return this.below(rel, listxattrAt);
  }

  /**
   * Calls `fn` with a directory fd and a path relative to it (no leading "/") that reach `rel` (not ""):
   * the root's fd, or for a long `rel` its parent's (longpath.ts `inParent`).
   */
  private below<T>(rel: string, fn: (dirFd: number, relPath: string) => T): T {
    if (rel.length < LONG_PATH) return fn(this.fd, rel.slice(1));
    return inParent(this.fd, rel, fn);
  }

  /** EROFS for an open that could change a read-only layer. */
  protected guardOpen(flags: number): void {
    if ((flags & O_ACCMODE) !== O_RDONLY || flags & O_TRUNC) throw fsError("EROFS", "layer is read-only");
  }

  /** open(2) of `rel` that never changes its access time where O_NOATIME is allowed (openNoatime). */
  protected openNoatime(rel: string, flags: number, mode?: number): FdFile {
    this.guardOpen(flags);
    return new FdFile(this.at(rel, (p) => openNoatime(p, flags, mode)));
  }

  open(rel: string): LayerFile {
    return this.openNoatime(rel, O_RDONLY);
  }

  openAccess(rel: string, flags: number): FdFile {
    const file = this.openForCaller(rel, flags);
    // A read-only layer's file is opened to be read: its first bytes start coming from the disk now,
    // while the caller's READ makes its way here (one round trip less of waiting on a cold file).
    if (!this.writable) sys.willNeed(file.fd, 0n, READ_AHEAD);
    return file;
  }

  private openForCaller(rel: string, flags: number): FdFile {
    const via = this.access?.files;
    if (via === undefined) return this.openNoatime(rel, flags);
    this.guardOpen(flags);
    return new FdFile(withPath(via.fd, via.root, rel, (p) => fs.openSync(bytesOf(p), flags)));
  }

  /** Whether callers' reads of files go through the layer's own root (no clone, no O_NOATIME). */
  protected readsOwnRoot(): boolean {
    return this.access?.files?.fd === this.fd;
  }

  statfs(): LayerStatFs {
    const s = fs.statfsSync(bytesOf(this.root), { bigint: true });
    const { bsize, blocks, bfree, bavail, files, ffree } = s;
    return { bsize: Number(bsize), blocks, bfree, bavail, files, ffree };
  }
}

/** A writable directory layer: the union's writable branch, or its work dir. */
export class WritableDirLayer extends DirLayer implements WritableLayer {
  override readonly writable = true;
  /** Names a `tryLstat` found missing (absent.ts): answered again without a system call. */
  private readonly absent = new AbsentNames();

  constructor(origin: string, opts: DirLayerOptions = {}) {
    super(origin, opts, true);
  }

  override tryLstat(rel: string): Stat | undefined {
    if (this.absent.has(rel)) return undefined;
    const st = super.tryLstat(rel);
    if (st === undefined) this.absent.add(rel);
    return st;
  }

  protected override guardOpen(): void {
    // everything may be changed here
  }

  override openAccess(rel: string, flags: number): WritableFile {
    if ((flags & O_CREAT) !== 0) this.absent.created(rel);
    return super.openAccess(rel, flags);
  }

  create(rel: string, flags: number, mode: number): WritableFile {
    this.absent.created(rel);
    return new FdFile(this.at(rel, (p) => fs.openSync(bytesOf(p), flags | O_CREAT, mode)));
  }

  forAccess(rel: string, file: WritableFile, flags: number): WritableFile {
    if (this.readsOwnRoot()) return file;
    const again = this.openAccess(rel, flags & ~(O_CREAT | O_EXCL | O_TRUNC));
    file.close();
    return again;
  }

  mkdir(rel: string, mode: number): void {
    this.absent.created(rel);
    this.at(rel, (p) => fs.mkdirSync(bytesOf(p), { mode }));
  }

  symlink(target: string, rel: string): void {
    this.absent.created(rel);
    this.at(rel, (p) => fs.symlinkSync(bytesOf(target), bytesOf(p)));
  }

  mknod(rel: string, mode: number, rdev: number): void {
    this.absent.created(rel);
    this.at(rel, (p) => sys.mknod(p, mode, rdev));
  }

  link(existingRel: string, newRel: string): void {
    this.linkFrom(this, existingRel, newRel);
  }

  unlink(rel: string): void {
    this.at(rel, (p) => fs.unlinkSync(bytesOf(p)));
  }

  rmdir(rel: string): void {
    this.at(rel, (p) => fs.rmdirSync(bytesOf(p)));
  }

  rename(fromRel: string, toRel: string, flags = 0): void {
    this.moveFrom(this, fromRel, toRel, flags);
  }

  lchown(rel: string, uid: number, gid: number): void {
    this.at(rel, (p) => fs.lchownSync(bytesOf(p), uid, gid));
  }

  chmod(rel: string, mode: number): void {
    this.at(rel, (p) => fs.chmodSync(bytesOf(p), mode & 0o7777));
  }

  truncate(rel: string, size: bigint): void {
    this.at(rel, (p) => fs.truncateSync(bytesOf(p), Number(size)));
  }

  utimens(rel: string, atime: bigint | "now" | undefined, mtime: bigint | "now" | undefined): void {
    this.at(rel, (p) => sys.utimens(p, atime, mtime));
  }

  setxattr(rel: string, name: string, value: Buffer, flags: number): void {
    this.at(rel, (p) => sys.lsetxattr(p, name, value, flags));
  }

  removexattr(rel: string, name: string): void {
    this.at(rel, (p) => sys.lremovexattr(p, name));
  }

  removeTree(rel: string): void {
    this.at(rel, (p) => fs.rmSync(bytesOf(p), { recursive: true, force: true }));
  }

  moveFrom(from: WritableLayer, fromRel: string, toRel: string, flags = 0): void {
    // The destination gains a tree; with RENAME_EXCHANGE or RENAME_WHITEOUT, the source gains one too.
    const source = sameStorage(from);
    this.absent.moved(toRel);
    source.absent.moved(fromRel);
    source.at(fromRel, (a) =>
      this.at(toRel, (b) => {
        if (flags === 0) fs.renameSync(bytesOf(a), bytesOf(b));
        else sys.renameat2(a, b, flags);
      }),
    );
  }

  linkFrom(from: WritableLayer, existingRel: string, newRel: string): void {
    this.absent.created(newRel);
    sameStorage(from).at(existingRel, (a) => this.at(newRel, (b) => fs.linkSync(bytesOf(a), bytesOf(b))));
  }
}

/** `layer` as a directory layer, which a move or link between layers needs (EXDEV otherwise). */
function sameStorage(layer: WritableLayer): WritableDirLayer {
  if (!(layer instanceof WritableDirLayer)) throw fsError("EXDEV", "not a directory layer");
  return layer;
}
