/**
 * Mount-table helpers for tests: what is mounted where, waiting for a condition with a deadline, taking
 * a mount down for sure, and kernel overlayfs mounts (the reference the union is compared with).
 *
 * Nothing here stats a path *inside* a mount to learn whether it is mounted: a hung or dead FUSE daemon
 * would make that call hang or fail. The mount table (/proc/self/mountinfo) is the only source.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export interface MountEntry {
  id: number;
  parentId: number;
  /** "major:minor" of the mounted filesystem; for FUSE the minor is the connection number. */
  dev: string;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/**
 * Undoes the kernel's octal escapes in a mountinfo field (`\040` space, `\011` tab, `\012` newline,
 * `\134` backslash). `raw` holds the field's bytes one char per byte (latin1); the result is UTF-8 text.
 */
export function decodeMountField(raw: string): string {
  const bytes = raw.replace(/\\([0-7]{3})/g, (_m, oct: string) =>
    String.fromCharCode(parseInt(oct, 8) & 0xff),
  );
  return Buffer.from(bytes, "latin1").toString("utf8");
}

/** Parses the raw bytes of a mountinfo file (see proc(5)). */
export function parseMountInfo(raw: Buffer): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of raw.toString("latin1").split("\n")) {
    if (line.trim() === "") continue;
    const fields = line.split(" ");
    const sep = fields.indexOf("-", 6);
    if (sep < 0 || fields.length < sep + 4) throw new Error(`unparsable mountinfo line: ${line}`);
    const f = (i: number): string => fields[i] ?? "";
    entries.push({
      id: Number(f(0)),
      parentId: Number(f(1)),
      dev: f(2),
      root: decodeMountField(f(3)),
      mountPoint: decodeMountField(f(4)),
      options: f(5),
      fsType: f(sep + 1),
      source: decodeMountField(f(sep + 2)),
      superOptions: decodeMountField(f(sep + 3)),
    });
  }
  return entries;
}

export function readMountInfo(): MountEntry[] {
  return parseMountInfo(fs.readFileSync("/proc/self/mountinfo"));
}

/**
 * Absolute, symlink-free form of `p`, resolving only its parent: the path itself may be a mountpoint
 * whose daemon hangs, so it is never stat'ed.
 */
export function canonicalPath(p: string): string {
  const abs = path.resolve(p);
  if (abs === "/") return abs;
  try {
    return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return abs;
  }
}

/** Mounts whose mountpoint is exactly `p` (several when stacked), in mount order. */
export function mountsAt(p: string): MountEntry[] {
  const want = canonicalPath(p);
  return readMountInfo().filter((m) => m.mountPoint === want);
}

export function isMounted(p: string): boolean {
  return mountsAt(p).length > 0;
}

/** Mounts at or below `p`. */
export function mountsUnder(p: string): MountEntry[] {
  const want = canonicalPath(p);
  const prefix = want.endsWith("/") ? want : `${want}/`;
  return readMountInfo().filter((m) => m.mountPoint === want || m.mountPoint.startsWith(prefix));
}

/** True for the filesystem types the tests create: FUSE (any subtype) and kernel overlayfs. */
export function isUnionFsType(fsType: string): boolean {
  return fsType === "fuse" || fsType.startsWith("fuse.") || fsType === "overlay";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `pred` until it returns a truthy value (returned) or `deadlineMs` has passed (throws, naming
 * `what` and the last error `pred` threw). The first check happens at once; the pause between checks
 * grows from 5 ms to 100 ms. This is the only way tests wait: never a fixed sleep.
 */
export async function waitFor<T>(
  pred: () => T | Promise<T>,
  deadlineMs: number,
  what = "condition",
): Promise<NonNullable<T>> {
  const start = Date.now();
  let pause = 5;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await pred();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    const elapsed = Date.now() - start;
    if (elapsed >= deadlineMs) {
      const why = lastError === undefined ? "" : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${why}`);
    }
    await sleep(Math.min(pause, deadlineMs - elapsed));
    pause = Math.min(pause * 2, 100);
  }
}

export interface CommandResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (no shell), with a time limit, stdin closed. */
export function run(cmd: string, args: readonly string[], timeoutMs = 20_000): CommandResult {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== "ETIMEDOUT") throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export type UnmountOutcome = "not-mounted" | "unmounted" | "detached";

/**
 * Takes down every mount at `p`: `umount` first, `umount -l` (detach) when that fails (busy, hung).
 * Throws only if something is still mounted there afterwards. `-c` keeps umount from stat'ing the path.
 */
export function forceUnmount(p: string): UnmountOutcome {
  const target = canonicalPath(p);
  let outcome: UnmountOutcome = "not-mounted";
  for (let round = 0; round < 16 && isMounted(target); round++) {
    const r = run("umount", ["-c", target], 10_000);
    if (r.status === 0 && outcome === "not-mounted") outcome = "unmounted";
    if (r.status !== 0 && isMounted(target)) {
      run("umount", ["-c", "-l", target], 10_000);
      outcome = "detached";
    }
  }
  const left = mountsAt(target);
  if (left.length > 0) {
    throw new Error(`forceUnmount: still mounted at ${target}: ${left.map((m) => m.fsType).join(", ")}`);
  }
  return outcome;
}

export interface OverlayOptions {
  /** Top first, as overlayfs's lowerdir lists them. */
  lower: readonly string[];
  upper: string;
  work: string;
  mnt: string;
  /**
   * Extra mount options. The default pins the features whose built-in default varies between kernels, so
   * the reference behaves the same everywhere: no redirects (renaming a lower directory is EXDEV), no
   * inode index, no metacopy, no xino.
   */
  extraOptions?: readonly string[];
}

export const OVERLAY_PINNED_OPTIONS = ["redirect_dir=off", "index=off", "metacopy=off", "xino=off"] as const;

export interface KernelOverlay {
  readonly mnt: string;
  /** Unmounts (detaching when busy); never throws when already gone. */
  unmount(): void;
}

function checkOverlayPath(p: string): string {
  const abs = canonicalPath(p);
  if (/[,:\\\s]/.test(abs)) throw new Error(`overlayfs option paths cannot contain , : \\ or spaces: ${abs}`);
  return abs;
}

/** `mount -t overlay overlay -o lowerdir=…,upperdir=…,workdir=… MNT`; throws with mount's message on failure. */
export function mountKernelOverlay(o: OverlayOptions): KernelOverlay {
  if (o.lower.length === 0) throw new Error("mountKernelOverlay: need at least one lower dir");
  const mnt = checkOverlayPath(o.mnt);
  const opts = [
    `lowerdir=${o.lower.map(checkOverlayPath).join(":")}`,
    `upperdir=${checkOverlayPath(o.upper)}`,
    `workdir=${checkOverlayPath(o.work)}`,
    ...(o.extraOptions ?? OVERLAY_PINNED_OPTIONS),
  ];
  const r = run("mount", ["-t", "overlay", "overlay", "-o", opts.join(","), mnt]);
  if (r.status !== 0) {
    throw new Error(`mount -t overlay failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  }
  if (!mountsAt(mnt).some((m) => m.fsType === "overlay")) {
    forceUnmount(mnt);
    throw new Error(`mount -t overlay succeeded but no overlay shows at ${mnt}`);
  }
  return { mnt, unmount: () => void forceUnmount(mnt) };
}

/** Unmounts an overlay made by mountKernelOverlay (or anything else mounted at `mnt`). */
export function unmountKernelOverlay(mnt: string): void {
  forceUnmount(mnt);
}
