/**
 * Syscalls Node's `fs` lacks, over koffi (prebuilt; nothing is compiled at install).
 *
 * Invariants:
 * - Every function takes byte-string paths (see bytes.ts) and throws an errno error shaped like Node's
 *   (`code`, `errno`, `syscall`, `path`, no stack trace) on failure; none returns -1. An outcome that is
 *   not a failure is a return value instead: `readSome`'s empty non-blocking descriptor, `flock`'s
 *   lock held elsewhere, `cachedPages`' missing cachestat.
 * - Nothing follows a symlink unless its name says so: the xattr calls are the l* variants and
 *   `utimens` uses AT_SYMLINK_NOFOLLOW.
 * - This is the only module that binds libc's functions (stat.ts: statx; xattrat.ts: getxattrat and
 *   listxattrat); native.ts loads it, on first use.
 */
import { constants } from "node:os";
import { bytesOf } from "./bytes";
import { koffi, libc, once } from "./native";

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** utimensat's "set to the current time" and "leave alone" markers for tv_nsec. */
export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;

/** The functions, bound on first use (see native.ts). */
const c = once(() => ({
  openat: libc().func("int openat(int dirfd, const void *path, int flags, ...)"),
  lgetxattr: libc().func("intptr_t lgetxattr(const void *path, const void *name, void *value, size_t size)"),
  lsetxattr: libc().func(
    "int lsetxattr(const void *path, const void *name, const void *value, size_t size, int flags)",
  ),
  llistxattr: libc().func("intptr_t llistxattr(const void *path, void *list, size_t size)"),
  lremovexattr: libc().func("int lremovexattr(const void *path, const void *name)"),
  mknod: libc().func("int mknod(const void *path, uint32_t mode, uint64_t dev)"),
  utimensat: libc().func("int utimensat(int dirfd, const void *path, const void *times, int flags)"),
  futimens: libc().func("int futimens(int fd, const void *times)"),
  renameat2: libc().func(
    "int renameat2(int olddirfd, const void *oldpath, int newdirfd, const void *newpath, uint32_t flags)",
  ),
  fallocate: libc().func("int fallocate(int fd, int mode, int64_t offset, int64_t len)"),
  lseek: libc().func("int64_t lseek(int fd, int64_t offset, int whence)"),
  umount2: libc().func("int umount2(const void *target, int flags)"),
  mount: libc().func(
    "int mount(const void *source, const void *target, const void *fstype, unsigned long flags, const void *data)",
  ),
  ioctlInt: libc().func("int ioctl(int fd, unsigned long request, intptr_t arg)"),
  fcntlInt: libc().func("int fcntl(int fd, int cmd, intptr_t arg)"),
  ioctlPtr: libc().func("int ioctl(int fd, unsigned long request, void *arg)"),
  pipe2: libc().func("int pipe2(void *fds, int flags)"),
  close: libc().func("int close(int fd)"),
  poll: libc().func("int poll(void *fds, uint64_t nfds, int timeout)"),
  splice: libc().func(
    "intptr_t splice(int fdIn, void *offIn, int fdOut, void *offOut, size_t len, unsigned int flags)",
  ),
  copyFileRange: libc().func(
    "intptr_t copy_file_range(int fdIn, void *offIn, int fdOut, void *offOut, size_t len, unsigned int flags)",
  ),
  getdents64: libc().func("intptr_t getdents64(int fd, void *buf, size_t count)"),
  read: libc().func("intptr_t read(int fd, void *buf, size_t count)"),
  fadvise: libc().func("int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)"),
  clockGettime: libc().func("int clock_gettime(int clock, void *ts)"),
  fstatvfs: libc().func("int fstatvfs(int fd, void *buf)"),
  flock: libc().func("int flock(int fd, int operation)"),
  syscall: libc().func("long syscall(long number, ...)"),
  cachestat: libc().func("long syscall(long number, int fd, void *range, void *cstat, unsigned int flags)"),
  schedYield: libc().func("int sched_yield()"),
  setAffinity: libc().func("int sched_setaffinity(int pid, size_t size, void *mask)"),
}));

const ENODATA = constants.errno.ENODATA as number;
const EINTR = constants.errno.EINTR as number;
const EAGAIN = constants.errno.EAGAIN as number;
const F_SETFL = 4;
const EOPNOTSUPP = constants.errno.EOPNOTSUPP as number;
const ERANGE = constants.errno.ERANGE as number;

const codeByErrno = new Map<number, string>(
  Object.entries(constants.errno as Record<string, number>).map(([k, v]) => [v, k]),
);

/**
 * A Node-shaped errno error for the errno koffi saw after a failed call. Without a stack trace: these
 * are outcomes (no such attribute, name exists), and some come on every write (security.capability).
 */
export function sysError(syscall: string, path?: string, errno = koffi().errno()): Error {
  const code = codeByErrno.get(errno) ?? "EIO";
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(`${code}: ${syscall} failed${path === undefined ? "" : ` on '${path}'`}`) as Error & {
    code: string;
    errno: number;
    syscall: string;
    path?: string;
  };
  Error.stackTraceLimit = limit;
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}

/** NUL-terminated bytes of a byte string, for a `const char *`. */
function cstr(b: string): Buffer {
  const out = Buffer.alloc(b.length + 1);
  bytesOf(b).copy(out);
  return out;
}

/** undefined for the failed call's ENODATA, else its error. */
function noData(syscall: string, path: string): undefined {
  if (koffi().errno() !== ENODATA) throw sysError(syscall, path);
  return undefined;
}

function check(ret: number, syscall: string, path?: string): number {
  if (ret < 0) throw sysError(syscall, path);
  return ret;
}

/** openat(2) without O_CREAT (no mode); returns the new fd. `path` is relative to `dirfd`. */
export function openat(dirfd: number, path: string, flags: number): number {
  return check(c().openat(dirfd, cstr(path), flags) as number, "openat", path);
}

export function lgetxattr(path: string, name: string): Buffer {
  const value = lgetxattrIfAny(path, name);
  if (value === undefined) throw sysError("lgetxattr", path, ENODATA);
  return value;
}

/** The value of `name`, or undefined when `path` has no such attribute (ENODATA). */
export function lgetxattrIfAny(path: string, name: string): Buffer | undefined {
  const p = cstr(path);
  const n = cstr(name);
  for (;;) {
    const size = c().lgetxattr(p, n, null, 0) as number;
    if (size < 0) return noData("lgetxattr", path);
    const buf = Buffer.alloc(size);
    const got = c().lgetxattr(p, n, buf, size) as number;
    if (got >= 0) return buf.subarray(0, got);
    // ERANGE: the value grew since its size was asked for; ask again.
    if (koffi().errno() !== ERANGE) return noData("lgetxattr", path);
  }
}

/** The value of `name`, or undefined when `path` has no such attribute (ENODATA) or none at all. */
export function tryLgetxattr(path: string, name: string): Buffer | undefined {
  const p = cstr(path);
  const n = cstr(name);
  const buf = Buffer.allocUnsafe(256);
  const got = c().lgetxattr(p, n, buf, buf.length) as number;
  if (got >= 0) return buf.subarray(0, got);
  const errno = koffi().errno();
  if (errno === ENODATA || errno === EOPNOTSUPP) return undefined;
  if (errno === ERANGE) return lgetxattr(path, name);
  throw sysError("lgetxattr", path);
}

export function lsetxattr(path: string, name: string, value: Buffer, flags: number): void {
  check(c().lsetxattr(cstr(path), cstr(name), value, value.length, flags) as number, "lsetxattr", path);
}

/** Names of the extended attributes of `path` (byte strings). */
export function llistxattr(path: string): string[] {
  const p = cstr(path);
  for (;;) {
    const size = check(c().llistxattr(p, null, 0) as number, "llistxattr", path);
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = c().llistxattr(p, buf, size) as number;
    if (got >= 0) return splitNames(buf.subarray(0, got));
    if (koffi().errno() !== (constants.errno.ERANGE as number)) throw sysError("llistxattr", path);
  }
}

/** The names of a listxattr list (NUL-terminated byte strings). */
export function splitNames(buf: Buffer): string[] {
  return buf
    .toString("latin1")
    .split("\0")
    .filter((s) => s.length > 0);
}

export function lremovexattr(path: string, name: string): void {
  check(c().lremovexattr(cstr(path), cstr(name)) as number, "lremovexattr", path);
}

export function mknod(path: string, mode: number, rdev: number): void {
  check(c().mknod(cstr(path), mode, rdev) as number, "mknod", path);
}

/** Sets atime/mtime of `path` itself (never a symlink's target); `undefined` leaves a time alone. */
export function utimens(path: string, atime: TimeArg, mtime: TimeArg): void {
  const times = timespecs(atime, mtime);
  check(c().utimensat(AT_FDCWD, cstr(path), times, AT_SYMLINK_NOFOLLOW) as number, "utimensat", path);
}

/** Sets atime/mtime of an open file; `undefined` leaves a time alone. */
export function futimens(fd: number, atime: TimeArg, mtime: TimeArg): void {
  check(c().futimens(fd, timespecs(atime, mtime)) as number, "futimens");
}

/** A time to set: ns since the epoch, "now", or undefined to leave it alone (UTIME_OMIT). */
type TimeArg = bigint | "now" | undefined;

/** struct timespec[2] for utimensat/futimens. */
function timespecs(atime: TimeArg, mtime: TimeArg): Buffer {
  const times = Buffer.alloc(32);
  writeTimespec(times, 0, atime);
  writeTimespec(times, 16, mtime);
  return times;
}

function writeTimespec(buf: Buffer, at: number, t: TimeArg): void {
  if (t === undefined || t === "now") {
    buf.writeBigInt64LE(0n, at);
    buf.writeBigInt64LE(BigInt(t === undefined ? UTIME_OMIT : UTIME_NOW), at + 8);
    return;
  }
  const sec = t >= 0n ? t / 1_000_000_000n : (t - 999_999_999n) / 1_000_000_000n;
  buf.writeBigInt64LE(sec, at);
  buf.writeBigInt64LE(t - sec * 1_000_000_000n, at + 8);
}

export function renameat2(from: string, to: string, flags: number): void {
  check(c().renameat2(AT_FDCWD, cstr(from), AT_FDCWD, cstr(to), flags) as number, "renameat2", from);
}

export function fallocate(fd: number, mode: number, offset: bigint, length: bigint): void {
  check(c().fallocate(fd, mode, offset, length) as number, "fallocate");
}

export function lseek(fd: number, offset: bigint, whence: number): bigint {
  const r = c().lseek(fd, offset, whence) as number | bigint;
  if (Number(r) < 0) throw sysError("lseek");
  return BigInt(r);
}

export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;

/**
 * flock(2) on an open descriptor; retries EINTR. With LOCK_NB, returns false instead of blocking when
 * another descriptor holds a conflicting lock.
 */
export function flock(fd: number, operation: number): boolean {
  for (;;) {
    if ((c().flock(fd, operation) as number) === 0) return true;
    const errno = koffi().errno();
    if (errno === EINTR) continue;
    if (errno === (constants.errno.EWOULDBLOCK as number) && (operation & LOCK_NB) !== 0) return false;
    throw sysError("flock");
  }
}

export const MNT_FORCE = 1;
export const MNT_DETACH = 2;

export function umount2(target: string, flags: number): void {
  check(c().umount2(cstr(target), flags) as number, "umount2", target);
}

/**
 * mount(2) of a new filesystem. Unlike the rest of this module, every argument is text (UTF-8), as
 * mount(8) gets them on its command line; `flags` are MS_*.
 */
export function mountNew(source: string, target: string, fstype: string, flags: number, data: string): void {
  const z = (s: string): Buffer => Buffer.from(`${s}\0`, "utf8");
  check(c().mount(z(source), z(target), z(fstype), flags, z(data)) as number, "mount", target);
}

/** FICLONE: make `dstFd` share `srcFd`'s extents (reflink). Throws EOPNOTSUPP/EXDEV/EINVAL where impossible. */
const FICLONE = 0x40049409;
export function ficlone(dstFd: number, srcFd: number): void {
  check(c().ioctlInt(dstFd, FICLONE, srcFd) as number, "ioctl(FICLONE)");
}

const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;

/** A close-on-exec pipe, both ends blocking: [read fd, write fd]. */
function closeOnExecPipe(): [number, number] {
  const fds = Buffer.alloc(8);
  check(c().pipe2(fds, O_CLOEXEC) as number, "pipe2");
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

const F_GETFL = 3;

/** Makes reads and writes of `fd` fail with EAGAIN instead of blocking (O_NONBLOCK). */
export function setNonBlocking(fd: number): void {
  const flags = check(c().fcntlInt(fd, F_GETFL, 0) as number, "fcntl");
  check(c().fcntlInt(fd, F_SETFL, flags | O_NONBLOCK) as number, "fcntl");
}

/**
 * Reads the fixed-size records (`size` bytes each, written whole: at most PIPE_BUF) waiting in the
 * non-blocking pipe `fd`, up to `batch` per read, and hands each to `each` (`buf` is reused: valid
 * during the call). Returns once the pipe is empty.
 */
export function readRecords(
  fd: number,
  size: number,
  each: (buf: Buffer, at: number) => void,
  batch = 64,
): void {
  const buf = Buffer.alloc(size * batch);
  for (;;) {
    let n: number | undefined;
    try {
      n = readSome(fd, buf);
    } catch {
      return; // as an empty pipe: the caller looks again on its next wake-up
    }
    if (n === undefined) return; // all read
    for (let at = 0; at + size <= n; at += size) each(buf, at);
    if (n < buf.length) return;
  }
}

/**
 * read(2) of up to `buf.length` bytes from `fd`'s current position: the count read, or undefined when
 * the non-blocking `fd` has nothing yet (EAGAIN). Other failures throw, EINTR included. Node's
 * `fs.readSync` builds an error with a stack trace for every EAGAIN, which cost a spinning serving
 * thread a sixth of its CPU (docs/performance.md); this builds none.
 */
export function readSome(fd: number, buf: Buffer): number | undefined {
  const n = Number(c().read(fd, buf, buf.length));
  if (n >= 0) return n;
  const errno = koffi().errno();
  if (errno === EAGAIN) return undefined;
  throw sysError("read", undefined, errno);
}

/** Empties the non-blocking wake-up pipe `fd` (its bytes mean only "look again"). */
export function drainPipe(fd: number): void {
  readRecords(fd, 1, () => undefined);
}

/** A close-on-exec pipe whose read end does not block: [read fd, write fd]. */
export function pipe(): [number, number] {
  const [r, w] = closeOnExecPipe();
  setNonBlocking(r);
  return [r, w];
}

const F_SETPIPE_SZ = 1031;

/**
 * A close-on-exec pipe (both ends blocking) that holds `bytes`, or as much as the caller may have (an
 * unprivileged one is held to /proc/sys/fs/pipe-max-size): [read fd, write fd, capacity in bytes].
 */
export function sizedPipe(bytes: number): [number, number, number] {
  const [r, w] = closeOnExecPipe();
  for (let want = bytes; want >= 4096; want /= 2) {
    const got = c().fcntlInt(w, F_SETPIPE_SZ, want) as number;
    if (got > 0) return [r, w, got];
  }
  return [r, w, 65536];
}

const spliceOffset = Buffer.alloc(8);

/**
 * splice(2) of up to `len` bytes from `fdIn` (at `offIn`, a file; or from its current position: a pipe,
 * when null) to the pipe or device `fdOut`; the count moved (0 at the end of a file).
 */
export function splice(fdIn: number, offIn: bigint | null, fdOut: number, len: number): number {
  if (offIn !== null) spliceOffset.writeBigInt64LE(offIn);
  const n = Number(c().splice(fdIn, offIn === null ? null : spliceOffset, fdOut, null, len, 0));
  return check(n, "splice");
}

const POLLIN = 0x1;
const POLLERR = 0x8;
const POLLHUP = 0x10;

/** A close-on-exec duplicate of `fd` (fcntl F_DUPFD_CLOEXEC). */
export function dupFd(fd: number): number {
  const F_DUPFD_CLOEXEC = 1030;
  return check(c().fcntlInt(fd, F_DUPFD_CLOEXEC, 0) as number, "fcntl");
}

const SYS_CACHESTAT = 451; // the same number on every architecture (Linux 6.5)
const cachestatRange = Buffer.alloc(16); // struct cachestat_range { __u64 off, len; }
const cachestatOut = Buffer.alloc(40); // struct cachestat: nr_cache comes first
let noCachestat = false;

/**
 * How many pages of `fd`'s bytes [offset, offset + len) are in the page cache (cachestat(2)), counting
 * pages being read in; undefined where the kernel or the file system cannot say (it is never asked
 * again after ENOSYS).
 */
export function cachedPages(fd: number, offset: bigint, len: number): number | undefined {
  if (noCachestat) return undefined;
  cachestatRange.writeBigUInt64LE(offset, 0);
  cachestatRange.writeBigUInt64LE(BigInt(len), 8);
  if (Number(c().cachestat(SYS_CACHESTAT, fd, cachestatRange, cachestatOut, 0)) === 0)
    return Number(cachestatOut.readBigUInt64LE(0));
  if (koffi().errno() === (constants.errno.ENOSYS as number)) noCachestat = true;
  return undefined;
}

/** sched_yield(2): lets another thread that waits for this CPU run first (none: returns at once). */
export function schedYield(): void {
  c().schedYield();
}

/**
 * Binds the calling thread to CPU `cpu` (sched_setaffinity(2) of thread 0: the caller); false when the
 * kernel refuses (the CPU is offline, or not in the process's cpuset).
 */
export function pinToCpu(cpu: number): boolean {
  const mask = Buffer.alloc(Math.max(128, Math.ceil((cpu + 1) / 64) * 8));
  mask[cpu >> 3] = 1 << (cpu & 7);
  return (c().setAffinity(0, mask.length, mask) as number) === 0;
}

/** close(2) for descriptors made here (Node warns when its own close sees an fd it did not open). */
export function closeFd(fd: number): void {
  check(c().close(fd) as number, "close");
}

/**
 * Blocks until one of `fds` is readable (or in error: its read reports why), or `timeoutMs` passed
 * (-1: never); retries EINTR. Returns which ones are (none after a timeout).
 */
export function pollReadable(fds: readonly number[], timeoutMs = -1): boolean[] {
  const arr = Buffer.alloc(8 * fds.length); // struct pollfd { int fd; short events; short revents; }
  fds.forEach((fd, i) => {
    arr.writeInt32LE(fd, i * 8);
    arr.writeInt16LE(POLLIN, i * 8 + 4);
  });
  for (;;) {
    const n = c().poll(arr, fds.length, timeoutMs) as number;
    if (n >= 0) break;
    if (koffi().errno() !== EINTR) check(n, "poll");
  }
  return fds.map((_, i) => (arr.readInt16LE(i * 8 + 6) & (POLLIN | POLLERR | POLLHUP)) !== 0);
}

/** ioctl whose argument is a pointer to `arg` (in and out); returns the non-negative result. */
export function ioctlBuffer(fd: number, request: number, arg: Buffer, name: string): number {
  return check(c().ioctlPtr(fd, request, arg) as number, `ioctl(${name})`);
}

/** copy_file_range with explicit offsets; returns bytes copied (0 at end of input). */
export function copyFileRange(
  fdIn: number,
  offIn: bigint,
  fdOut: number,
  offOut: bigint,
  len: number,
): number {
  const a = Buffer.alloc(8);
  const b = Buffer.alloc(8);
  a.writeBigInt64LE(offIn);
  b.writeBigInt64LE(offOut);
  return check(c().copyFileRange(fdIn, a, fdOut, b, len, 0) as number, "copy_file_range");
}

const CLOCK_THREAD_CPUTIME_ID = 3;
const timespec = Buffer.alloc(16);

/** The CPU time the calling thread has used, in ns (CLOCK_THREAD_CPUTIME_ID: exact, unlike schedstat). */
export function threadCpuNs(): bigint {
  check(c().clockGettime(CLOCK_THREAD_CPUTIME_ID, timespec) as number, "clock_gettime");
  return timespec.readBigInt64LE(0) * 1_000_000_000n + timespec.readBigInt64LE(8);
}

const POSIX_FADV_WILLNEED = 3;

/**
 * Starts reading `len` bytes of `fd` at `offset` into the page cache without waiting for them
 * (posix_fadvise WILLNEED; it may wait for the file's block map, not for its data). A hint: a failure
 * (a file that cannot be read ahead) is ignored, the one call here that throws nothing.
 */
export function willNeed(fd: number, offset: bigint, len: bigint): void {
  c().fadvise(fd, offset, len, POSIX_FADV_WILLNEED);
}

/** Reads directory entries of the directory open as `fd` into `buf` (getdents64); 0 at the end. */
export function getdents64(fd: number, buf: Buffer): number {
  return check(Number(c().getdents64(fd, buf, buf.length)), "getdents64");
}

/** statvfs(3)'s f_flag of the mount `fd` is on (ST_RDONLY, ST_NOATIME, ST_NODIRATIME, ST_RELATIME …). */
export function fstatvfsFlags(fd: number): number {
  const buf = Buffer.alloc(112); // struct statvfs on 64-bit Linux: f_flag is the tenth unsigned long
  check(c().fstatvfs(fd, buf) as number, "fstatvfs");
  return Number(buf.readBigUInt64LE(72));
}

/** Syscall numbers of the mount API (the same on every architecture since Linux 5.2 and 5.12). */
const SYS_OPEN_TREE = 428;
const SYS_MOUNT_SETATTR = 442;
const OPEN_TREE_CLONE = 1;
const AT_EMPTY_PATH = 0x1000;
const AT_RECURSIVE = 0x8000;

/**
 * A detached copy of the mounts at and below directory `dirFd` (open_tree(2) with OPEN_TREE_CLONE |
 * AT_RECURSIVE): in no mount table, gone when its fd is closed. Needs CAP_SYS_ADMIN.
 */
export function cloneMountTree(dirFd: number): number {
  const flags = OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE;
  return check(
    Number(c().syscall(SYS_OPEN_TREE, "int", dirFd, "const char *", "", "unsigned int", flags)),
    "open_tree",
  );
}

/** mount_setattr(2) on every mount of the tree open as `fd`: sets `set` and clears `clear` (MOUNT_ATTR_*). */
export function setMountAttrs(fd: number, set: number, clear: number): void {
  const attr = Buffer.alloc(32); // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; }
  attr.writeBigUInt64LE(BigInt(set), 0);
  attr.writeBigUInt64LE(BigInt(clear), 8);
  const args = ["int", fd, "const char *", "", "unsigned int", AT_EMPTY_PATH | AT_RECURSIVE, "void *", attr];
  check(Number(c().syscall(SYS_MOUNT_SETATTR, ...args, "size_t", attr.length)), "mount_setattr");
}
