/**
 * What the fuse-native addon reads: stat and statvfs as arrays of 32-bit words, and libfuse's `-o` string.
 *
 * Invariants (the addon's layout, fuse-native 2.2.6 `populate_stat` / `populate_statvfs`):
 * - A stat is 18 u32 words: mode, uid, gid, size (lo, hi), dev, nlink, ino, rdev, blksize, blocks (lo, hi),
 *   atime, mtime, ctime (each lo, hi, in whole milliseconds). So inode numbers are 32 bits and times are
 *   milliseconds: `foldIno` keeps the core's layer tag (top bits) in the 32 bits instead of dropping it, and
 *   `msOf` truncates nanoseconds (times before 1970 become 0).
 * - A statvfs is 11 u32 words: bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag,
 *   namemax. Block counts past 2^32 are scaled into a larger fragment size so `df` sizes stay right.
 * - The option string fits the addon's 1024-byte buffer; the fsname is escaped for libfuse's option
 *   parser (`\\` and `,`) and shortened to fit.
 */
import { FS_SUBTYPE } from "../transport";
import type { Attr, StatFs } from "../../unionfs/types";

export const STAT_WORDS = 18;
export const STATFS_WORDS = 11;
const U32 = 0x1_0000_0000;
const U32_MAX = 0xffff_ffff;

/** Whole milliseconds since the epoch, as the binding carries times; never negative. */
export function msOf(ns: bigint): number {
  return ns <= 0n ? 0 : Number(ns / 1_000_000n);
}

/** Nanoseconds of a millisecond count handed over by the binding. */
export function nsOfMs(ms: number): bigint {
  return BigInt(Math.trunc(ms)) * 1_000_000n;
}

/** A 64-bit inode number folded into the 32 bits the binding carries: low word XOR high word. */
export function foldIno(ino: bigint): number {
  const v = BigInt.asUintN(64, ino);
  return Number((v ^ (v >> 32n)) & 0xffff_ffffn);
}

/** The value of two u32 words (lo, hi), as the binding passes 64-bit sizes, offsets and times. */
export function u64(lo: number, hi: number): number {
  return lo + hi * U32;
}

function putU64(a: Uint32Array, i: number, n: number): void {
  const v = Math.max(0, Math.trunc(n));
  a[i] = v % U32;
  a[i + 1] = Math.floor(v / U32);
}

export function statArray(attr: Attr): Uint32Array {
  const a = new Uint32Array(STAT_WORDS);
  a[0] = attr.mode;
  a[1] = attr.uid;
  a[2] = attr.gid;
  putU64(a, 3, Number(attr.size));
  a[5] = 0; // st_dev: the kernel ignores it
  a[6] = attr.nlink;
  a[7] = foldIno(attr.ino);
  a[8] = attr.rdev;
  a[9] = attr.blksize;
  putU64(a, 10, Number(attr.blocks));
  putU64(a, 12, msOf(attr.atimeNs));
  putU64(a, 14, msOf(attr.mtimeNs));
  putU64(a, 16, msOf(attr.ctimeNs));
  return a;
}

/** A readdir entry's stat: libfuse takes d_type from the mode and (with use_ino) d_ino from ino. */
export function direntArray(type: number, ino: bigint): Uint32Array {
  const a = new Uint32Array(STAT_WORDS);
  a[0] = type;
  a[6] = 1;
  a[7] = foldIno(ino);
  return a;
}

const clamp32 = (n: bigint): number => (n > BigInt(U32_MAX) ? U32_MAX : n < 0n ? 0 : Number(n));

export function statfsArray(s: StatFs): Uint32Array {
  let frsize = BigInt(s.frsize || s.bsize);
  let { blocks, bfree, bavail } = s;
  // Keep frsize * blocks (what df shows) while the counts do not fit 32 bits.
  while (blocks > BigInt(U32_MAX) && frsize < 1n << 30n) {
    frsize *= 2n;
    blocks /= 2n;
    bfree /= 2n;
    bavail /= 2n;
  }
  const a = new Uint32Array(STATFS_WORDS);
  a[0] = s.bsize;
  a[1] = Number(frsize);
  a[2] = clamp32(blocks);
  a[3] = clamp32(bfree);
  a[4] = clamp32(bavail);
  a[5] = clamp32(s.files);
  a[6] = clamp32(s.ffree);
  a[7] = clamp32(s.ffree);
  a[8] = 0;
  a[9] = 0;
  a[10] = s.namelen;
  return a;
}

/** The addon copies the option string into a 1024-byte buffer (NUL included). */
export const MAX_OPTIONS_BYTES = 1023;

/**
 * libfuse options: the mount type is fuse.unionfs-ts (subtype), st_ino comes from the core (use_ino),
 * the kernel checks permissions (default_permissions), the mountpoint may hold files (nonempty, as with
 * the kernel transport), and writes come in up to 128 KiB (big_writes). No allow_other: the binding does
 * not say who is calling, so only the mounting user may use the mount (see README "Transports").
 */
export const FIXED_OPTIONS: readonly string[] = [
  `subtype=${FS_SUBTYPE}`,
  "use_ino",
  "default_permissions",
  "nonempty",
  "big_writes",
  "max_write=131072",
  "max_read=131072",
];

function escapeOption(s: string): string {
  return s.replace(/[\\,]/g, (c) => `\\${c}`);
}

/** The fsname as libfuse gets it: no control characters, never empty, escaped, within `budget` bytes. */
export function fsnameOption(fsname: string, budget: number): string {
  // eslint-disable-next-line no-control-regex
  let s = fsname.replace(/[\x00-\x1f\x7f]/g, "?");
  if (s === "") s = FS_SUBTYPE;
  let chars = [...s];
  while (chars.length > 0 && Buffer.byteLength(escapeOption(chars.join(""))) > budget) {
    chars = chars.slice(0, -1);
  }
  return escapeOption(chars.join(""));
}

/** The whole `-o…` string handed to fuse-native. */
export function mountOptions(fsname: string, extra: readonly string[] = []): string {
  const rest = [...FIXED_OPTIONS, ...extra];
  const budget = MAX_OPTIONS_BYTES - Buffer.byteLength(`-ofsname=,${rest.join(",")}`);
  return `-o${[`fsname=${fsnameOption(fsname, budget)}`, ...rest].join(",")}`;
}
