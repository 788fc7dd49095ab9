/**
 * Taking a FUSE mount down from the outside, shared by both transports: the mount table, fusectl abort,
 * detaching, and running mount(8)/umount(8)/fusermount (as root umount -c, else fusermount).
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
import { FsError } from "../errors";
import { mountsAt } from "../sys/mountinfo";

export { mountsAt, type MountRow } from "../sys/mountinfo";

export const FUSECTL_DIR = "/sys/fs/fuse/connections";

export interface CommandResult {
  ok: boolean;
  stderr: string;
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

/** fusermount of fuse3 (Debian's `fuse3` also links it as `fusermount`), for users who are not root. */
function fusermount(): string {
  for (const dir of ["/usr/bin", "/bin", "/usr/local/bin"]) {
    for (const name of ["fusermount3", "fusermount"]) {
      if (fs.existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
    }
  }
  return "fusermount";
}

/** The command that unmounts `mountpoint` (lazily: detaches it even when busy). */
export function unmountCommand(mountpoint: string, lazy: boolean): [string, string[]] {
  if (isRoot()) return ["umount", lazy ? ["-c", "-l", mountpoint] : ["-c", mountpoint]];
  return [fusermount(), lazy ? ["-u", "-z", mountpoint] : ["-u", mountpoint]];
}

/** Lazily detaches the mount `dev` at `mountpoint` when it is there and on top; returns whether it is gone. */
export function detach(mountpoint: string, dev: string): boolean {
  if (isTopMount(mountpoint, dev)) {
    const [cmd, args] = unmountCommand(mountpoint, true);
    runSync(cmd, args);
  }
  return !isMounted(mountpoint, dev);
}

/** An errno error whose message is a command's error output on one line. */
export function mountError(stderr: string): FsError {
  const line = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join("; ");
  const code = /busy/i.test(line)
    ? "EBUSY"
    : /does not exist|no such file/i.test(line)
      ? "ENOENT"
      : /permission|superuser|not permitted/i.test(line)
        ? "EPERM"
        : "EIO";
  const err = new FsError(code, line);
  err.message = line;
  return err;
}
