/**
 * What `run` learns from /proc: liveness, children, mount namespaces, the daemon serving a mountpoint,
 * and whether a path is a mountpoint.
 *
 * Invariants: nothing here stats a path inside a mount (a dead or hung daemon would fail or hang the
 * call); every reader tolerates processes vanishing while it looks.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { mountsAt } from "../sys/mountinfo";

export const DAEMON_ENV_ENTRY = "UNIONFS_TS_DAEMON=1";

/** False for a PID that is gone or a zombie. */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return false;
  }
  const state = stat.charAt(stat.lastIndexOf(")") + 2);
  return state !== "Z" && state !== "X" && state !== "";
}

function allPids(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

/**
 * What process `pid` does on signal number `signum`: "caught" (a handler), "ignored" (SIG_IGN) or
 * "default"; undefined when it is gone or already ending. From /proc/PID/status.
 */
export function signalDisposition(pid: number, signum: number): Disposition | undefined {
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${pid}/status`, "latin1");
  } catch {
    return undefined;
  }
  return dispositionIn(status, signum);
}

type Disposition = "caught" | "ignored" | "default";

/**
 * The disposition of `signum` in the text of a /proc/PID/status. A zombie (Z), a process being reaped
 * (X) and one whose signal handlers are already released (the kernel then prints "Threads: 0" and empty
 * masks, which would read as "default") are ending by themselves: undefined.
 */
export function dispositionIn(status: string, signum: number): Disposition | undefined {
  const field = (name: string): string | undefined => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1];
  if (/^[ZX]/.test(field("State") ?? "X") || field("Threads") === "0") return undefined;
  const has = (name: string): boolean => {
    const mask = field(name);
    return (
      mask !== undefined &&
      /^[0-9a-f]+$/.test(mask) &&
      ((BigInt(`0x${mask}`) >> BigInt(signum - 1)) & 1n) === 1n
    );
  };
  if (has("SigCgt")) return "caught";
  return has("SigIgn") ? "ignored" : "default";
}

/** Direct children of `pid` (all its threads'). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1").trim();
      if (text !== "") out.push(...text.split(/\s+/).map(Number));
    } catch {
      // thread gone
    }
  }
  return out;
}

/** `mnt:[4026531841]` for a process, or undefined when it is gone. */
export function mountNsOf(pid: number | "self"): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Live processes in the mount namespace `ns`. */
export function pidsInMountNs(ns: string): number[] {
  return allPids().filter((pid) => pid !== process.pid && mountNsOf(pid) === ns && isAlive(pid));
}

/**
 * The unionfs-ts daemon serving `mountpoint` (absolute, canonical): a process with UNIONFS_TS_DAEMON=1 in
 * its environment whose `mount` command line ends with that mountpoint (resolved against its cwd).
 */
export function findDaemon(mountpoint: string): number | undefined {
  const needle = Buffer.from(`${DAEMON_ENV_ENTRY}\0`);
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${pid}/environ`).indexOf(needle) < 0) continue;
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      if (args[args.length - 1] === "") args.pop();
      const last = args[args.length - 1];
      if (last === undefined || !args.includes("mount")) continue;
      const abs = nodePath.resolve(fs.readlinkSync(`/proc/${pid}/cwd`), last);
      if (abs === mountpoint && isAlive(pid)) return pid;
    } catch {
      // gone, or not ours to read
    }
  }
  return undefined;
}

/** Filesystem types mounted exactly at `path` (UTF-8 text, canonical), bottom first. */
export function mountTypesAt(path: string): string[] {
  return mountsAt(path).map((m) => m.fsType);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `p`, but at most `ms` (the timer is cleared either way, so it never holds the process up). */
export async function waitAtMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `pred` every 20 ms until true or `ms` passed; returns its last value. */
export async function pollUntil(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (pred()) return true;
    if (Date.now() >= end) return false;
    await sleep(20);
  }
}
