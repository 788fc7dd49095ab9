/**
 * Fault injection for integration tests: a filesystem too small for a copy (tmpfs), a disk whose end
 * is gone (ext4 on a loop device shrunk under it: writes there fail with EIO), aborting a FUSE
 * connection, and child processes bounded in time that cannot freeze a test on a hung mount.
 *
 * Invariants:
 * - Teardown is registered with the caller's Cleanup *before* each thing exists, so a half-made fixture
 *   is still taken down: filesystems are unmounted, loop devices detached, whatever the test did.
 * - Nothing here touches a path inside a FUSE mount from the test process; child processes do.
 * - A child that outlives its deadline is taken to be stuck in a FUSE request (D state: SIGKILL does
 *   not free it). The connection of the mount it uses is aborted (fusectl), which fails the request,
 *   then the child is SIGKILLed if still there; the result says `hung`, for the test to fail on.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { forceUnmount, mountsAt, run } from "./mounts";
import { asUser, PY_PRELUDE, PYTHON } from "./syscalls";
import type { Cleanup } from "./unionfs";

export const FUSECTL_DIR = "/sys/fs/fuse/connections";

/** Runs a command that must succeed (no shell, time-limited); throws with its stderr otherwise. */
export function must(cmd: string, args: readonly string[], timeoutMs = 20_000): string {
  const r = run(cmd, args, timeoutMs);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** Mounts a tmpfs of `sizeMiB` on the existing directory `dir`, unmounted in teardown. */
export function mountTmpfs(t: Cleanup, dir: string, sizeMiB: number): void {
  t.defer(`unmount tmpfs ${dir}`, () => forceUnmount(dir));
  must("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=755`, "unionfs-ts-test", dir]);
}

export interface BadDiskOptions {
  /** Size of the ext4 filesystem. */
  sizeMiB: number;
  /** What is left of the device under it: every block past this fails with EIO. */
  goodMiB: number;
  /** Directories made (in the good part) before the end is cut off. */
  dirs: readonly string[];
}

/**
 * ext4 (no journal, mounted `sync`, so a data write that fails returns EIO to its writer at once) on a
 * loop device over `root/disk.img`, mounted on `root/disk`, whose device is then shrunk to `goodMiB`:
 * the filesystem still believes it has `sizeMiB`, and any write past the cut fails with EIO, as on a
 * disk with bad sectors. Metadata lives at the start, so names, inodes and empty files keep working.
 * Returns the mountpoint; teardown unmounts and detaches the loop device.
 */
export function mountBadDisk(t: Cleanup, root: string, o: BadDiskOptions): string {
  const img = path.join(root, "disk.img");
  const mnt = path.join(root, "disk");
  fs.mkdirSync(mnt);
  fs.writeFileSync(img, "");
  fs.truncateSync(img, o.sizeMiB << 20);
  must("mkfs.ext4", ["-q", "-F", "-O", "^has_journal", "-b", "4096", "-E", "nodiscard", img]);
  const loop = attachLoop(t, img);
  t.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
  must("mount", ["-t", "ext4", "-o", "sync,errors=continue", loop, mnt]);
  for (const d of o.dirs) fs.mkdirSync(path.join(mnt, d), { mode: 0o755 });
  must("sync", ["-f", mnt]);
  fs.truncateSync(img, o.goodMiB << 20);
  must("losetup", ["--set-capacity", loop]);
  return mnt;
}

/** `losetup -f --show IMG`, detached in teardown (after whatever is mounted from it is gone). */
function attachLoop(t: Cleanup, img: string): string {
  const holder: { loop?: string } = {};
  t.defer(`detach the loop device of ${img}`, () => {
    if (holder.loop !== undefined) must("losetup", ["-d", holder.loop]);
  });
  holder.loop = must("losetup", ["-f", "--show", img]).trim();
  return holder.loop;
}

/** Why mountBadDisk cannot work here (a missing tool, no loop devices), or undefined. */
export function badDiskUnavailable(): string | undefined {
  for (const tool of ["mkfs.ext4", "losetup"]) {
    if (run("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  if (!fs.existsSync("/dev/loop-control")) return "no loop devices (/dev/loop-control)";
  if (!/\text4$/m.test(fs.readFileSync("/proc/filesystems", "utf8"))) return "the kernel has no ext4";
  return undefined;
}

/** The "major:minor" of the FUSE mount at `mnt`, if one is there. */
export function fuseDevAt(mnt: string): string | undefined {
  return mountsAt(mnt).find((m) => m.fsType === "fuse" || m.fsType.startsWith("fuse."))?.dev;
}

/**
 * Aborts the FUSE connection `dev` ("major:minor"): every pending request fails (ENOTCONN), which frees
 * a process stuck in one. fusectl is mounted for the moment if it is not. True when the abort was made.
 */
export function abortFuse(dev: string): boolean {
  const [major, minor] = dev.split(":").map(Number);
  const id = ((major ?? 0) << 20) | (minor ?? 0);
  const present = mountsAt(FUSECTL_DIR).some((m) => m.fsType === "fusectl");
  const mountedHere = !present && run("mount", ["-t", "fusectl", "none", FUSECTL_DIR]).status === 0;
  try {
    fs.writeFileSync(`${FUSECTL_DIR}/${id}/abort`, "1");
    return true;
  } catch {
    return false;
  } finally {
    if (mountedHere) run("umount", [FUSECTL_DIR]);
  }
}

export interface BoundedOptions {
  uid?: number;
  gid?: number;
  timeoutMs: number;
  /** The FUSE mount the child works in: its connection is aborted if the child outlives its deadline. */
  mnt?: string;
  env?: NodeJS.ProcessEnv;
}

export interface BoundedResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** It outlived its deadline (the mount's connection was aborted to free it). */
  hung: boolean;
  /** From start to exit (or to the deadline, when hung). */
  ms: number;
}

/** How long a child freed by an abort (or SIGKILL) may take to go away. */
const REAP_MS = 5_000;

/** Runs `cmd` (no shell, stdin closed) and resolves when it exits; see the module comment on hangs. */
export function boundedChild(
  cmd: string,
  args: readonly string[],
  o: BoundedOptions,
): Promise<BoundedResult> {
  const [exe, ...rest] = [...asUser(o.uid, o.gid), cmd, ...args] as [string, ...string[]];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(exe, rest, { stdio: ["ignore", "pipe", "pipe"], env: o.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    let hungAt: number | undefined;
    const reap = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs + REAP_MS);
    const free = setTimeout(() => {
      hungAt = Date.now();
      const dev = o.mnt === undefined ? undefined : fuseDevAt(o.mnt);
      if (dev === undefined || !abortFuse(dev)) child.kill("SIGKILL");
    }, o.timeoutMs);
    const settle = (status: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(free);
      clearTimeout(reap);
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      resolve({
        status,
        signal,
        stdout,
        stderr,
        hung: hungAt !== undefined,
        ms: (hungAt ?? Date.now()) - started,
      });
    };
    child.once("error", (e) => {
      clearTimeout(free);
      clearTimeout(reap);
      reject(e);
    });
    child.once("close", settle);
  });
}

export interface PyResult<T> {
  out: T;
  hung: boolean;
  ms: number;
}

const PY_EPILOGUE = `\nsys.stdout.write("\\n" + json.dumps(_plain(out)) + "\\n")\n`;

/**
 * Runs `script` after syscalls.ts's PY_PRELUDE (so `attempt(fn, …)` gives an errno name) in a bounded
 * child and returns its `out`; when it hung, `out` is empty and `hung` is set. Throws when python failed
 * otherwise (an uncaught exception).
 */
export async function pyBounded<T = Record<string, unknown>>(
  script: string,
  args: readonly string[],
  o: BoundedOptions,
): Promise<PyResult<T>> {
  const r = await boundedChild(PYTHON, ["-c", `${PY_PRELUDE}\n${script}\n${PY_EPILOGUE}`, ...args], o);
  if (r.hung) return { out: {} as T, hung: true, ms: r.ms };
  if (r.status !== 0) throw new Error(`python exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  const lines = r.stdout.trimEnd().split("\n");
  return { out: JSON.parse(lines[lines.length - 1] ?? "{}") as T, hung: false, ms: r.ms };
}
