/** Small helpers shared by the POSIX cases. */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { py } from "../../helpers/syscalls";

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
