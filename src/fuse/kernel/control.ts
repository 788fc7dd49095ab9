/**
 * Taking a FUSE mount down from the outside, synchronously: the mount table, connection abort, detach.
 *
 * Invariants:
 * - Nothing here touches a path *inside* a mount: a wedged daemon would hang the caller. The mount table
 *   (/proc/self/mountinfo) tells what is mounted; umount runs with -c (no canonicalisation, no stat).
 * - Everything is synchronous so that crash handlers and process 'exit' listeners can call it.
 * - fusectl is mounted only for the moment of an abort, and unmounted again if it was mounted here.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { fromText } from "../../sys/bytes";

export const FUSECTL_DIR = "/sys/fs/fuse/connections";

export interface MountRow {
  /** "major:minor" of the mounted filesystem. */
  dev: string;
  /** Mount point as a byte string (escapes undone). */
  mountPoint: string;
  fsType: string;
}

function unescapeField(raw: string): string {
  return raw.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8) & 0xff));
}

export function parseMountInfo(raw: Buffer): MountRow[] {
  const rows: MountRow[] = [];
  for (const line of raw.toString("latin1").split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (sep < 0) continue;
    rows.push({ dev: f[2] ?? "", mountPoint: unescapeField(f[4] ?? ""), fsType: f[sep + 1] ?? "" });
  }
  return rows;
}

/** Mounts at `mountpoint` (UTF-8 text, canonical), bottom first. */
export function mountsAt(mountpoint: string): MountRow[] {
  const want = fromText(mountpoint);
  return parseMountInfo(fs.readFileSync("/proc/self/mountinfo")).filter((m) => m.mountPoint === want);
}

/** The kernel's dev_t for "major:minor": the name of the connection's directory under fusectl. */
export function connectionId(dev: string): number {
  const [major, minor] = dev.split(":").map(Number);
  return ((major ?? 0) << 20) | (minor ?? 0);
}

function run(cmd: string, args: string[]): { ok: boolean; stderr: string } {
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 10_000 });
  return { ok: r.status === 0, stderr: (r.stderr ?? r.error?.message ?? "").trim() };
}

function fusectlMounted(): boolean {
  return mountsAt(FUSECTL_DIR).some((m) => m.fsType === "fusectl");
}

/** Aborts the connection `dev` through fusectl: every pending and future request fails, reads get ENODEV. */
export function abortConnection(dev: string): boolean {
  const mounted = !fusectlMounted() && run("mount", ["-t", "fusectl", "none", FUSECTL_DIR]).ok;
  try {
    fs.writeFileSync(`${FUSECTL_DIR}/${connectionId(dev)}/abort`, "1");
    return true;
  } catch {
    return false;
  } finally {
    if (mounted) run("umount", ["-c", FUSECTL_DIR]);
  }
}

/** True when the mount `dev` is the topmost one at `mountpoint`. */
export function isTopMount(mountpoint: string, dev: string): boolean {
  return mountsAt(mountpoint).at(-1)?.dev === dev;
}

export function isMounted(mountpoint: string, dev: string): boolean {
  return mountsAt(mountpoint).some((m) => m.dev === dev);
}

/** Lazily detaches the mount `dev` at `mountpoint`, if it is there and on top; returns whether it is gone. */
export function detach(mountpoint: string, dev: string): boolean {
  if (isTopMount(mountpoint, dev)) run("umount", ["-c", "-l", mountpoint]);
  return !isMounted(mountpoint, dev);
}
