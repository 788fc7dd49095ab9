/**
 * Taking a FUSE mount down from the outside, shared by both transports: the mount table, fusectl abort,
 * and running mount(8)/umount(8)/fusermount.
 *
 * Invariants:
 * - Nothing here touches a path *inside* a mount: a wedged daemon would hang the caller. The mount table
 *   (/proc/self/mountinfo) tells what is mounted.
 * - The synchronous functions may be called from crash handlers and process 'exit' listeners.
 * - fusectl is mounted only for the moment of an abort (and only by root), and unmounted again if it
 *   was mounted here.
 * - Commands run without a shell, stdin closed, with a time limit.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { fromText } from "../sys/bytes";

export const FUSECTL_DIR = "/sys/fs/fuse/connections";

export interface MountRow {
  /** "major:minor" of the mounted filesystem (for FUSE the minor is the connection number). */
  dev: string;
  /** Mount point as a byte string (escapes undone). */
  mountPoint: string;
  fsType: string;
}

export interface CommandResult {
  ok: boolean;
  stderr: string;
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

/** True when the mount `dev` is the topmost one at `mountpoint`. */
export function isTopMount(mountpoint: string, dev: string): boolean {
  return mountsAt(mountpoint).at(-1)?.dev === dev;
}

export function isMounted(mountpoint: string, dev: string): boolean {
  return mountsAt(mountpoint).some((m) => m.dev === dev);
}

/** The kernel's dev_t for "major:minor": the name of the connection's directory under fusectl. */
export function connectionId(dev: string): number {
  const [major, minor] = dev.split(":").map(Number);
  return ((major ?? 0) << 20) | (minor ?? 0);
}

export function isRoot(): boolean {
  return (process.geteuid?.() ?? 0) === 0;
}

/** Runs a command synchronously (crash paths): stderr captured, killed after 10 s. */
export function runSync(cmd: string, args: string[]): CommandResult {
  const r = spawnSync(cmd, args, {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
    timeout: 10_000,
    killSignal: "SIGKILL",
  });
  return { ok: r.status === 0, stderr: (r.stderr ?? r.error?.message ?? "").trim() };
}

/**
 * Runs a command without blocking the JS thread (which may have to serve the mount meanwhile); `fd` is
 * passed to the child as its fd 3.
 */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { fd?: number; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const stdio: ("ignore" | "pipe" | number)[] = ["ignore", "ignore", "pipe"];
    if (opts.fd !== undefined) stdio.push(opts.fd);
    const child = spawn(cmd, args, { stdio });
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ ok: false, stderr: `${cmd}: ${err.message}` });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const why = signal !== null ? `${cmd} killed by ${signal}` : `${cmd} exited with ${code}`;
      resolve({ ok: code === 0, stderr: stderr.trim() || why });
    });
  });
}

/** Aborts the connection `dev` through fusectl: every pending and future request fails, reads get ENODEV. */
export function abortConnection(dev: string): boolean {
  const present = mountsAt(FUSECTL_DIR).some((m) => m.fsType === "fusectl");
  const mountedHere = !present && isRoot() && runSync("mount", ["-t", "fusectl", "none", FUSECTL_DIR]).ok;
  try {
    fs.writeFileSync(`${FUSECTL_DIR}/${connectionId(dev)}/abort`, "1");
    return true;
  } catch {
    return false;
  } finally {
    if (mountedHere) runSync("umount", ["-c", FUSECTL_DIR]);
  }
}
