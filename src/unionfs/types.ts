/**
 * The union core's contract with transports: path-based, synchronous, syscall-shaped.
 *
 * Invariants:
 * - Every path and name is a *byte string*: one JS char per byte (latin1), so non-UTF-8 names survive.
 *   Paths are absolute inside the union ("/", "/a/b"); names never contain "/" or NUL.
 *   `bytes.ts` converts between byte strings, Buffers and UTF-8 text.
 * - Methods are named after the syscalls they serve and throw errno errors (`FsError` or Node fs errors,
 *   both carrying `code`); they never return error values.
 * - Every method is synchronous, so a transport that calls them from one thread serialises every
 *   operation, which is what makes per-path serialisation trivially true today.
 * - File and directory handles are small integers owned by the core; a transport passes them back verbatim.
 */
import type { CopyProgress } from "../cow";

export type { CopyProgress };
import type { AccessTouch } from "./atime";

export type { AccessTouch };

/** Who is asking: new objects are owned by this uid/gid (the daemon itself runs as root). */
export interface Caller {
  uid: number;
  gid: number;
  pid: number;
  /**
   * The caller's umask when the transport left it to the core (FUSE_DONT_MASK): mknod, mkdir and create
   * apply it unless the parent directory has a default ACL. Undefined: the mode is already masked.
   */
  umask?: number;
}

/** Attributes as `lstat` reports them, with nanosecond times and 64-bit sizes and inode numbers. */
export interface Attr {
  ino: bigint;
  size: bigint;
  blocks: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
  /**
   * Generation number (a file handle names inode number and generation): 0 for an object whose number
   * is a lower layer's (lower objects, copies up, merged directories), which never names another object;
   * derived from the birth time for an object the writable branch made, whose number the filesystem may
   * give to a new object once it is deleted. Absent: 0.
   */
  gen?: number;
}

/** A time to set: nanoseconds since the epoch, or "now". Absent field = leave unchanged (UTIME_OMIT). */
export type TimeSpec = bigint | "now";

export interface SetAttrRequest {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: bigint;
  atime?: TimeSpec;
  mtime?: TimeSpec;
  /** Also clear set-id bits, as an unprivileged truncate or chown does (see `killSuidgid`). */
  killSuidgid?: boolean;
}

/** One merged directory entry. `type` is the S_IFMT bits of the entry's mode (e.g. 0o100000). */
export interface DirEntry {
  name: string;
  type: number;
  ino: bigint;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  namelen: number;
}

/** renameat2 flags. */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

/** setxattr flags. */
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

/** A file the kernel may read and write directly for an open handle (FUSE passthrough). */
export interface BackingFile {
  fd: number;
  dev: bigint;
  ino: bigint;
  /**
   * false: the union would rather see this handle's I/O (the file has other names, or a set-id bit), so
   * pass it through only where the kernel insists (other opens of the same node already are).
   */
  preferred: boolean;
}

/**
 * Background copy-up of big files: when copying `path` up would copy a big file's data, `stage` starts
 * that copy in another thread and returns a key; the transport holds back the request until `finished()`
 * returns that key (`wakeFd` becomes readable), then serves it as usual.
 */
export interface BackgroundCopies {
  stage(path: string): string | undefined;
  readonly wakeFd: number;
  finished(): string[];
  /** The copies running now: what each copies, how many bytes of how many are done, since when. */
  progress?(): CopyProgress[];
}

/** The operations a transport maps its requests onto, one method per syscall. */
export interface UnionOps {
  getattr(path: string, fh?: number): Attr;
  /**
   * `getattr` of a name being looked up; undefined (not ENOENT) where nothing has it, without a throw:
   * a miss is an answer, and throwing one costs more than finding it (a stat of a missing name). Where
   * absent, a transport uses `getattr` and takes its ENOENT.
   */
  lookup?(path: string): Attr | undefined;
  readlink(path: string): string;
  access(path: string, mask: number): void;

  mknod(path: string, mode: number, rdev: number, caller: Caller): Attr;
  mkdir(path: string, mode: number, caller: Caller): Attr;
  symlink(target: string, path: string, caller: Caller): Attr;
  link(existing: string, newPath: string): Attr;
  unlink(path: string): void;
  rmdir(path: string): void;
  rename(from: string, to: string, flags: number): void;
  setattr(path: string, req: SetAttrRequest, fh?: number): Attr;

  /** Opens a file (copying it up first when `flags` ask for writing). Returns a file handle. */
  open(path: string, flags: number): number;
  /** Creates and opens a file (O_CREAT semantics incl. O_EXCL). */
  create(path: string, flags: number, mode: number, caller: Caller): { fh: number; attr: Attr };
  /** Reads up to `length` bytes at `position`; a short (or empty) Buffer at end of file. */
  read(fh: number, length: number, position: bigint): Buffer;
  /**
   * `read` into the caller's `buf` (up to `buf.length` bytes); the count read. For a transport that
   * replies before its next request and can reuse one buffer: a fresh 1 MiB Buffer per READ is freed
   * only by a GC, and one allocated while V8 marks the heap lives until the next full GC.
   */
  readInto?(fh: number, buf: Buffer, position: bigint): number;
  /**
   * The descriptor `read` would read `fh`'s data from (after the same checks), for a transport that
   * moves the bytes itself (splice) or reads on another thread without calling the union: it stays open
   * until `release(fh)`, and is what `read` reads for as long as `copyUpEpoch()` returns what it returns
   * now (a copy-up may make the handle read another file from then on). Undefined where the layer has
   * none (a tar layer's file).
   */
  readFd?(fh: number): number | undefined;
  /** A number that changes whenever a copy-up may have made a handle read another file (`readFd`). */
  copyUpEpoch?(): number;
  /** Writes `data` at `position` (ignored for O_APPEND handles); returns bytes written. */
  write(fh: number, data: Buffer, position: bigint): number;
  flush(fh: number): void;
  fsync(fh: number, datasync: boolean): void;
  /**
   * The descriptor `fsync` would flush for `fh` (after the same checks), for a transport that flushes it
   * on a thread of its own; undefined when there is nothing to flush (a lower file, `nofsync`).
   */
  syncFd?(fh: number): number | undefined;
  release(fh: number): void;
  fallocate(fh: number, mode: number, offset: bigint, length: bigint): void;
  lseek(fh: number, offset: bigint, whence: number): bigint;
  /**
   * The file behind an open handle when the kernel may read, write and mmap it directly without the
   * union seeing those calls (no copy-up can replace it); undefined when it must never be.
   */
  passthrough?(fh: number): BackingFile | undefined;
  /**
   * What the next read through open file `fh` does to the file's access time (the mount's atime mode
   * applied to its times now): a transport that serves reads from a cache lets the next one reach the
   * union when it is `next`, and every one when it is `every`. The union changes access times itself,
   * on the reads it serves and on the kernel's reads of a passed-through file.
   */
  accessTouch?(fh: number): AccessTouch;
  /**
   * Whether listing a directory changes its access time every time (strictatime, and not nodiratime): a
   * transport must not answer listings from a cache then.
   */
  listingsTouchEveryTime?(): boolean;
  /**
   * A hint: every entry of directory `path` is about to be looked up (READDIRPLUS). The union may have
   * its read-only layers warm what those lookups read, off the caller's thread (layer/prefetch.ts).
   * Changes nothing, answers nothing, never throws.
   */
  prefetchEntries?(path: string): void;
  /**
   * Clears S_ISUID, and S_ISGID when group-executable, of an open file: what a write or O_TRUNC open by
   * an unprivileged caller does (the kernel asks for it when it leaves that to the filesystem).
   * Returns whether the mode changed: the kernel's cached mode is then stale.
   */
  killSuidgid?(fh: number): boolean;
  /**
   * The directories (union paths) whose attributes changed without a request naming them, since the
   * last call: a copy-up placed something in them in the writable branch (their mtime changed), or
   * materialized them. A transport that lets the kernel cache attributes drops theirs. Undefined when
   * none did (the common case: asked after every request, it allocates nothing then).
   */
  takeChanged?(): string[] | undefined;

  /** Background copy-up of big files (undefined: none, e.g. a read-only union). */
  readonly background?: BackgroundCopies;

  /**
   * Snapshot of the merged listing, without "." and "..", in a stable order. Returns a dir handle. A
   * caller's listing counts as an access (atime.ts); `internal` is for the daemon's own (no atime).
   */
  opendir(path: string, opts?: { internal?: boolean }): number;
  readdir(dh: number): readonly DirEntry[];
  releasedir(dh: number): void;

  statfs(path: string): StatFs;

  /**
   * With `killSgid` (an access ACL set by an owner outside the file's group, without CAP_FSETID) the
   * set-gid bit is cleared too, as chmod would.
   */
  setxattr(path: string, name: string, value: Buffer, flags: number, opts?: { killSgid?: boolean }): void;
  /**
   * The value of `name`; undefined when the object has no such attribute (ENODATA to the caller). Not
   * an error: `ls -l` asks for attributes of every file that few have, and throwing costs more than the
   * syscall that found the answer.
   */
  getxattr(path: string, name: string): Buffer | undefined;
  listxattr(path: string): string[];
  removexattr(path: string, name: string): void;

  /** Releases every handle and cache; called once when the transport stops. */
  destroy(): void;
}
