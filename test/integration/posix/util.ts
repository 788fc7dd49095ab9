/** Small helpers shared by the POSIX cases. */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { mustRun, py } from "../../helpers/syscalls";

export const fsp = fs.promises;

/** The unprivileged users the cases act as (no passwd entry is needed for setpriv). */
export const USER = 1000;
export const OTHER = 1001;
/** A group that is neither root's nor USER's. */
export const GROUP = 50;

/**
 * Timestamps come from a coarse clock (one tick is a few ms): before an operation whose new ctime or
 * mtime must be strictly later than the previous one, let the clock move on. This is not waiting for
 * a condition, so it is a plain pause.
 */
export function nextTick(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 15));
}

export interface StatNs {
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  blocks: number;
  rdev: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export async function lstat(p: string | Buffer): Promise<StatNs> {
  const s = await fsp.lstat(p, { bigint: true });
  return {
    ino: s.ino,
    mode: Number(s.mode),
    nlink: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    size: Number(s.size),
    blocks: Number(s.blocks),
    rdev: Number(s.rdev),
    atimeNs: s.atimeNs,
    mtimeNs: s.mtimeNs,
    ctimeNs: s.ctimeNs,
  };
}

export async function readText(p: string | Buffer): Promise<string> {
  return fsp.readFile(p, "latin1");
}

export async function ls(p: string): Promise<string[]> {
  return (await fsp.readdir(p)).sort();
}

/** Sets exact nanosecond atime and mtime (Node's utimes only takes float seconds). */
export async function setTimesNs(p: string, atimeNs: bigint, mtimeNs: bigint): Promise<void> {
  const r = await py(`out["r"] = attempt(utimensat, A[0], int(A[1]), int(A[2]), False)`, [
    p,
    atimeNs.toString(),
    mtimeNs.toString(),
  ]);
  assert.equal(r.r, "ok", `utimensat ${p}`);
}

/** chown without following symlinks. */
export function lchown(p: string, uid: number, gid: number): void {
  fs.lchownSync(p, uid, gid);
}

/** Returns the error code a promise rejects with, or "ok". */
export async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    const c = (err as { code?: unknown }).code;
    if (typeof c === "string") return c;
    throw err;
  }
}

/** A name of exactly `n` bytes made of `ch`, with `prefix` first. */
export function nameOf(n: number, prefix = "", ch = "n"): string {
  return prefix + ch.repeat(n - prefix.length);
}

const INO_VIEWS = String.raw`
AT_STATX_FORCE_SYNC, AT_STATX_DONT_SYNC, STATX_INO = 0x2000, 0x4000, 0x100
def statx_ino(p, flags):
    buf = ctypes.create_string_buffer(256)
    check(libc.statx(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW | flags, STATX_INO, buf))
    return str(int.from_bytes(buf.raw[32:40], "little"))  # stx_ino
out["v"] = [[statx_ino(p, AT_STATX_DONT_SYNC), statx_ino(p, AT_STATX_FORCE_SYNC), str(os.lstat(p).st_ino)]
            for p in A]
`;

/**
 * st_ino of each path, checked to be the same whoever asks: statx answered from the kernel's cache
 * (AT_STATX_DONT_SYNC), statx asking the filesystem (AT_STATX_FORCE_SYNC), lstat(2) (Python's os.lstat,
 * all basic fields) and `stat -c %i` (GNU stat: statx for STATX_INO alone). One inode, one number.
 */
export async function inoViews(paths: readonly string[]): Promise<bigint[]> {
  const r = await py<{ v: string[][] }>(INO_VIEWS, paths);
  const byStat = (await mustRun("stat", ["-c", "%i", ...paths])).trim().split("\n");
  return paths.map((p, i) => {
    const seen = [...(r.v[i] ?? []), byStat[i] ?? ""];
    assert.equal(new Set(seen).size, 1, `${p}: cached, forced, lstat, stat -c %i: ${seen.join(" ")}`);
    return BigInt(seen[0] ?? -1);
  });
}
