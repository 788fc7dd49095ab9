/**
 * lstat relative to a directory fd (statx with AT_SYMLINK_NOFOLLOW), without Node's BigIntStats; the birth
 * time too, where the filesystem records one.
 *
 * Invariants: the layout read is struct statx's, which is the same on every architecture; device
 * numbers are encoded as glibc's makedev does (as Node reports `dev`/`rdev`); one preallocated buffer
 * is reused, so the functions are not re-entrant (the union runs on one thread). ENOENT and ENOTDIR give
 * `undefined` from `statAt`; every other error throws a Node-shaped errno error.
 */
import { constants } from "node:os";
import { koffi, libc, once } from "./native";

/** What the union reads of an lstat: a structural subset of Node's `BigIntStats`. */
export interface Stat {
  dev: bigint;
  ino: bigint;
  mode: bigint;
  nlink: bigint;
  uid: bigint;
  gid: bigint;
  rdev: bigint;
  size: bigint;
  blksize: bigint;
  blocks: bigint;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** Birth time; 0n where the filesystem does not record one. */
  birthtimeNs?: bigint;
}

const statx = once(() =>
  libc().func("int statx(int dirfd, const void *path, int flags, unsigned int mask, void *buf)"),
);

const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const STATX_BTIME = 0x800;
const buf = Buffer.alloc(256);
const ENOENT = constants.errno.ENOENT as number;
const ENOTDIR = constants.errno.ENOTDIR as number;
const codeByErrno = new Map<number, string>(
  Object.entries(constants.errno as Record<string, number>).map(([k, v]) => [v, k]),
);

/** A device number from its major and minor, encoded as glibc's makedev does. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

function ns(at: number): bigint {
  return buf.readBigInt64LE(at) * 1_000_000_000n + BigInt(buf.readUInt32LE(at + 8));
}

function parse(): Stat {
  return {
    dev: makedev(buf.readUInt32LE(136), buf.readUInt32LE(140)),
    ino: buf.readBigUInt64LE(32),
    mode: BigInt(buf.readUInt16LE(28)),
    nlink: BigInt(buf.readUInt32LE(16)),
    uid: BigInt(buf.readUInt32LE(20)),
    gid: BigInt(buf.readUInt32LE(24)),
    rdev: makedev(buf.readUInt32LE(128), buf.readUInt32LE(132)),
    size: buf.readBigUInt64LE(40),
    blksize: BigInt(buf.readUInt32LE(4)),
    blocks: buf.readBigUInt64LE(48),
    atimeNs: ns(64),
    mtimeNs: ns(112),
    ctimeNs: ns(96),
    birthtimeNs: buf.readUInt32LE(0) & STATX_BTIME ? ns(80) : 0n,
  };
}

/** `rel` is a NUL-terminated relative path ("" for the directory itself). */
function call(dirfd: number, rel: Buffer, empty: boolean): number {
  return statx()(
    dirfd,
    rel,
    AT_SYMLINK_NOFOLLOW | (empty ? AT_EMPTY_PATH : 0),
    STATX_BASIC_STATS | STATX_BTIME,
    buf,
  ) as number;
}

/** lstat of `rel` (NUL-terminated, relative) under `dirfd`, or undefined when it does not exist. */
export function statAt(dirfd: number, rel: Buffer): Stat | undefined {
  if (call(dirfd, rel, rel.length <= 1) === 0) return parse();
  const errno = koffi().errno();
  if (errno === ENOENT || errno === ENOTDIR) return undefined;
  throw statError(errno, rel);
}

function statError(errno: number, rel: Buffer): Error {
  const code = codeByErrno.get(errno) ?? "EIO";
  const path = rel.subarray(0, Math.max(0, rel.length - 1)).toString("latin1");
  return Object.assign(new Error(`${code}: statx '${path}'`), {
    code,
    errno: -errno,
    syscall: "statx",
    path,
  });
}

/** lstat that throws ENOENT/ENOTDIR too. */
export function statAtOrThrow(dirfd: number, rel: Buffer): Stat {
  const st = statAt(dirfd, rel);
  if (st === undefined) throw Object.assign(new Error(`ENOENT: statx`), { code: "ENOENT", errno: -ENOENT });
  return st;
}
