/**
 * A layer (branch): one directory tree of the union, addressed by layer-relative byte-string paths.
 *
 * Invariants:
 * - Relative paths are "" for the layer root or "/a/b" below it; `withPath(rel, fn)` is the only join.
 *   A relative path has no length limit: where `root + rel` would be too long for a syscall, the object
 *   is reached through an fd of its parent directory (sys/longpath.ts); short paths pay nothing for it.
 * - A layer holds an fd of its root directory from construction to `close()`. lstat always goes through
 *   it (statx on the fd); a read-only layer's other calls go through `/proc/self/fd/N/rel`, so it keeps
 *   working when its path is unmounted lazily or renamed after the union was built (container engines
 *   detach id-mapped lower-layer mounts right after mounting). The writable layer uses its real path for
 *   the other calls: creating through a /proc magic link costs about three times as much, and engines
 *   never detach the upper dir.
 * - A read-only layer throws EROFS from every mutating method: lower layers are never modified.
 * - Reading never changes an access time, except through `openAccess`, `readdir(rel, true)` and
 *   `readlink`: those are the union's callers' reads, and change it as the layer's atime policy says
 *   (atime.ts): the union's in the writable layer, noatime in a read-only one (a union gives each
 *   read-only layer a noatime policy, so even the kernel's own reads of it never count).
 * - Nothing here knows about whiteouts or other layers; `tryLstat` is the one place that turns
 *   "not in this layer" (ENOENT/ENOTDIR) into `undefined`.
 */
import * as fs from "node:fs";
import { fsError, isAbsent } from "../errors";
import { bytesOf, bstr } from "../sys/bytes";
import * as sys from "../sys/libc";
import { inParent, LONG_PATH, withPath } from "../sys/longpath";
import { statAt, statAtOrThrow, type Stat } from "../sys/stat";
import { AccessRoots, listNoatime, openNoatime, type AtimePolicy } from "./atime";

export type { Stat };

/** One raw directory entry of one layer. `type` is S_IFMT bits, 0 when the fs did not say. */
export interface RawEntry {
  name: string;
  type: number;
}

export interface Layer {
  readonly index: number;
  /** Byte-string path through which the layer root is reached (`/proc/self/fd/N` when read-only). */
  readonly root: string;
  /** The layer's path as given (for messages). */
  readonly origin: string;
  readonly writable: boolean;
  /** Whether whiteouts in this layer hide lower layers (aufs `rr` does not look for them). */
  readonly honoursWhiteouts: boolean;
  /** Device of the layer root, for inode-number uniqueness across filesystems. */
  readonly dev: bigint;

  /**
   * Calls `fn` with a byte-string path that reaches `rel` in this layer, valid while `fn` runs, usable
   * with any syscall, with room to append one more component (`root + rel` unless that is too long).
   */
  withPath<T>(rel: string, fn: (path: string) => T): T;
  lstat(rel: string): Stat;
  tryLstat(rel: string): Stat | undefined;
  /**
   * The entries of directory `rel`. With `access` the listing is a caller's (READDIR) and changes the
   * directory's access time as the union's atime policy says; otherwise it never does.
   */
  readdir(rel: string, access?: boolean): RawEntry[];
  /** A caller's readlink: it counts as reading the symlink (see `openAccess`). */
  readlink(rel: string): string;
  getxattr(rel: string, name: string): Buffer;
  listxattr(rel: string): string[];
  /** Opens `rel`; reading through the fd never changes its access time (O_NOATIME where allowed). */
  open(rel: string, flags: number, mode?: number): number;
  /**
   * Opens `rel` for a caller of the union: reading through the fd (also by the kernel: FUSE passthrough,
   * exec) changes its access time as the layer's atime policy says.
   */
  openAccess(rel: string, flags: number): number;
  /** `fd`, just opened on `rel` by path with `flags`, as `openAccess` would have opened it (else closed). */
  forAccess(rel: string, fd: number, flags: number): number;

  mkdir(rel: string, mode: number): void;
  symlink(target: string, rel: string): void;
  mknod(rel: string, mode: number, rdev: number): void;
  link(existingRel: string, newRel: string): void;
  unlink(rel: string): void;
  rmdir(rel: string): void;
  rename(fromRel: string, toRel: string, flags?: number): void;
  lchown(rel: string, uid: number, gid: number): void;
  chmod(rel: string, mode: number): void;
  truncate(rel: string, size: bigint): void;
  utimens(rel: string, atime: bigint | "now" | undefined, mtime: bigint | "now" | undefined): void;
  setxattr(rel: string, name: string, value: Buffer, flags: number): void;
  removexattr(rel: string, name: string): void;
  /** Releases the root fd. */
  close(): void;
}

const S_IFMT = 0o170000;
const EMPTY = Buffer.from([0]);

/** NUL-terminated bytes of a layer-relative path without its leading "/" ("" for the root). */
function relative(rel: string): Buffer {
  const out = Buffer.allocUnsafe(rel.length === 0 ? 1 : rel.length);
  if (rel.length > 0) out.write(rel.slice(1), 0, "latin1");
  out[out.length - 1] = 0;
  return out;
}
const O_ACCMODE = 3;

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

/** A layer that is a plain directory on a local filesystem. */
export class DirLayer implements Layer {
  readonly dev: bigint;
  readonly root: string;
  private fd: number;
  /** Where callers' reads are opened (undefined: O_NOATIME, and readlink through the root). */
  private readonly access: AccessRoots | undefined;

  /**
   * `origin` is the absolute byte-string path of the layer's root directory; `atime` what callers'
   * reads do to access times (atime.ts): the union's policy for the writable layer (default relatime),
   * noatime for a read-only one; a read-only layer without one opens O_NOATIME (image tools).
   */
  constructor(
    readonly index: number,
    readonly origin: string,
    readonly writable: boolean,
    readonly honoursWhiteouts: boolean,
    atime?: AtimePolicy,
  ) {
    this.fd = fs.openSync(bytesOf(origin), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    this.root = writable ? origin : `/proc/self/fd/${this.fd}`;
    this.dev = statAtOrThrow(this.fd, EMPTY).dev;
    const policy = atime ?? (writable ? { files: "relatime", dirs: "relatime" } : undefined);
    this.access =
      policy === undefined ? undefined : new AccessRoots({ fd: this.fd, root: this.root }, policy);
  }

  close(): void {
    this.access?.close();
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  withPath<T>(rel: string, fn: (path: string) => T): T {
    return withPath(this.fd, this.root, rel, fn);
  }

  private guard(): void {
    if (!this.writable) throw fsError("EROFS", "layer is read-only");
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
    const via = access ? this.access?.dirs : undefined;
    if (via === undefined) return this.withPath(rel, listNoatime);
    const dirents = withPath(via.fd, via.root, rel, (p) =>
      fs.readdirSync(bytesOf(p), { withFileTypes: true, encoding: "buffer" }),
    );
    return dirents.map((d) => ({ name: bstr(d.name), type: direntType(d) & S_IFMT }));
  }

  readlink(rel: string): string {
    const via = this.access?.files ?? { fd: this.fd, root: this.root };
    return bstr(withPath(via.fd, via.root, rel, (p) => fs.readlinkSync(bytesOf(p), { encoding: "buffer" })));
  }

  getxattr(rel: string, name: string): Buffer {
    return this.withPath(rel, (p) => sys.lgetxattr(p, name));
  }

  listxattr(rel: string): string[] {
    return this.withPath(rel, (p) => sys.llistxattr(p));
  }

  /** EROFS for an open that could change a read-only layer. */
  private guardOpen(flags: number): void {
    const accmode = flags & O_ACCMODE;
    if (!this.writable && (accmode !== fs.constants.O_RDONLY || flags & fs.constants.O_TRUNC)) {
      throw fsError("EROFS", "layer is read-only");
    }
  }

  open(rel: string, flags: number, mode?: number): number {
    this.guardOpen(flags);
    return this.withPath(rel, (p) => openNoatime(p, flags, mode));
  }

  openAccess(rel: string, flags: number): number {
    const via = this.access?.files;
    if (via === undefined) return this.open(rel, flags);
    this.guardOpen(flags);
    return withPath(via.fd, via.root, rel, (p) => fs.openSync(bytesOf(p), flags));
  }

  forAccess(rel: string, fd: number, flags: number): number {
    const via = this.access?.files;
    if (via !== undefined && via.fd === this.fd) return fd;
    const again = this.openAccess(
      rel,
      flags & ~(fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_TRUNC),
    );
    fs.closeSync(fd);
    return again;
  }

  mkdir(rel: string, mode: number): void {
    this.guard();
    this.withPath(rel, (p) => fs.mkdirSync(bytesOf(p), { mode }));
  }

  symlink(target: string, rel: string): void {
    this.guard();
    this.withPath(rel, (p) => fs.symlinkSync(bytesOf(target), bytesOf(p)));
  }

  mknod(rel: string, mode: number, rdev: number): void {
    this.guard();
    this.withPath(rel, (p) => sys.mknod(p, mode, rdev));
  }

  link(existingRel: string, newRel: string): void {
    this.guard();
    this.withPath(existingRel, (from) =>
      this.withPath(newRel, (to) => fs.linkSync(bytesOf(from), bytesOf(to))),
    );
  }

  unlink(rel: string): void {
    this.guard();
    this.withPath(rel, (p) => fs.unlinkSync(bytesOf(p)));
  }

  rmdir(rel: string): void {
    this.guard();
    this.withPath(rel, (p) => fs.rmdirSync(bytesOf(p)));
  }

  rename(fromRel: string, toRel: string, flags = 0): void {
    this.guard();
    this.withPath(fromRel, (from) =>
      this.withPath(toRel, (to) => {
        if (flags === 0) fs.renameSync(bytesOf(from), bytesOf(to));
        else sys.renameat2(from, to, flags);
      }),
    );
  }

  lchown(rel: string, uid: number, gid: number): void {
    this.guard();
    this.withPath(rel, (p) => fs.lchownSync(bytesOf(p), uid, gid));
  }

  chmod(rel: string, mode: number): void {
    this.guard();
    this.withPath(rel, (p) => fs.chmodSync(bytesOf(p), mode & 0o7777));
  }

  truncate(rel: string, size: bigint): void {
    this.guard();
    this.withPath(rel, (p) => fs.truncateSync(bytesOf(p), Number(size)));
  }

  utimens(rel: string, atime: bigint | "now" | undefined, mtime: bigint | "now" | undefined): void {
    this.guard();
    this.withPath(rel, (p) => sys.utimens(p, atime, mtime));
  }

  setxattr(rel: string, name: string, value: Buffer, flags: number): void {
    this.guard();
    this.withPath(rel, (p) => sys.lsetxattr(p, name, value, flags));
  }

  removexattr(rel: string, name: string): void {
    this.guard();
    this.withPath(rel, (p) => sys.lremovexattr(p, name));
  }
}
