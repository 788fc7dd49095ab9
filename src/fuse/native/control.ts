/**
 * The mount table, the FUSE device descriptors of this process, and taking a fuse-native mount down from
 * the outside.
 *
 * Invariants:
 * - Nothing here stats a path inside a live mount of this process: the JS thread that would have to
 *   answer is the one asking. Commands run with `umount -c` (no canonicalisation); the synchronous ones
 *   (`abortConnection`, `detachSync`) are for crash paths, after the connection was aborted when possible.
 * - A mount is "ours" when its type is fuse.unionfs-ts; `cleanDeadMount` touches only such a mount, and
 *   only when stat answers ENOTCONN (its daemon is gone).
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { FsError, codeOf } from "../../errors";
import { fromText } from "../../sys/bytes";
import { FS_SUBTYPE } from "./encode";

export const FS_TYPE = `fuse.${FS_SUBTYPE}`;
export const FUSECTL_DIR = "/sys/fs/fuse/connections";

export interface MountRow {
  /** "major:minor" of the mounted filesystem (for FUSE the minor is the connection number). */
  dev: string;
  /** Mount point as a byte string (escapes undone). */
  mountPoint: string;
  fsType: string;
}

export function parseMountInfo(raw: Buffer): MountRow[] {
  const rows: MountRow[] = [];
  for (const line of raw.toString("latin1").split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (sep < 0) continue;
    const mountPoint = (f[4] ?? "").replace(/\\([0-7]{3})/g, (_m, oct: string) =>
      String.fromCharCode(parseInt(oct, 8) & 0xff),
    );
    rows.push({ dev: f[2] ?? "", mountPoint, fsType: f[sep + 1] ?? "" });
  }
  return rows;
}

/** Mounts at `mountpoint` (UTF-8 text, canonical), bottom first. */
export function mountsAt(mountpoint: string): MountRow[] {
  const want = fromText(mountpoint);
  return parseMountInfo(fs.readFileSync("/proc/self/mountinfo")).filter((m) => m.mountPoint === want);
}

export function isMounted(mountpoint: string, dev: string): boolean {
  return mountsAt(mountpoint).some((m) => m.dev === dev);
}

export function isTopMount(mountpoint: string, dev: string): boolean {
  return mountsAt(mountpoint).at(-1)?.dev === dev;
}

/** The absolute path with its parent resolved, without touching the path itself (it may be a dead mount). */
export function canonicalMountpoint(p: string): string {
  const abs = path.resolve(p);
  if (abs === "/") return abs;
  try {
    return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return abs;
  }
}

function isRoot(): boolean {
  return (process.geteuid?.() ?? 0) === 0;
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

export interface CommandResult {
  ok: boolean;
  stderr: string;
}

/** Runs a command without blocking the JS thread (which may have to serve the mount meanwhile). */
export function runCommand(cmd: string, args: string[], timeoutMs = 30_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
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

function runSync(cmd: string, args: string[]): CommandResult {
  const r = spawnSync(cmd, args, {
    stdio: ["ignore", "ignore", "pipe"],
    encoding: "utf8",
    timeout: 10_000,
    killSignal: "SIGKILL",
  });
  return { ok: r.status === 0, stderr: (r.stderr ?? r.error?.message ?? "").trim() };
}

/** The kernel's dev_t for "major:minor": the name of the connection's directory under fusectl. */
export function connectionId(dev: string): number {
  const [major, minor] = dev.split(":").map(Number);
  return ((major ?? 0) << 20) | (minor ?? 0);
}

/**
 * Aborts the FUSE connection `dev` through fusectl (every pending and future request fails at once).
 * fusectl is mounted for the moment when root and it is not; returns false when it could not be done.
 */
export function abortConnection(dev: string): boolean {
  const present = () => mountsAt(FUSECTL_DIR).some((m) => m.fsType === "fusectl");
  const mountedHere = !present() && isRoot() && runSync("mount", ["-t", "fusectl", "none", FUSECTL_DIR]).ok;
  try {
    fs.writeFileSync(`${FUSECTL_DIR}/${connectionId(dev)}/abort`, "1");
    return true;
  } catch {
    return false;
  } finally {
    if (mountedHere) runSync("umount", ["-c", FUSECTL_DIR]);
  }
}

/** Lazily detaches the mount `dev` at `mountpoint` when it is there and on top; returns whether it is gone. */
export function detachSync(mountpoint: string, dev: string): boolean {
  if (isTopMount(mountpoint, dev)) {
    const [cmd, args] = unmountCommand(mountpoint, true);
    runSync(cmd, args);
  }
  return !isMounted(mountpoint, dev);
}

// ---- the FUSE device descriptors of this process ------------------------------------------------

/** This process's descriptors open on /dev/fuse. */
export function fuseDeviceFds(): number[] {
  let names: string[];
  try {
    names = fs.readdirSync("/proc/self/fd");
  } catch {
    return [];
  }
  return names
    .map(Number)
    .filter((fd) => Number.isInteger(fd) && isFuseDevice(fd))
    .sort((a, b) => a - b);
}

function isFuseDevice(fd: number): boolean {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`) === "/dev/fuse";
  } catch {
    return false;
  }
}

/** The connection number an open /dev/fuse descriptor serves (newer kernels say it in fdinfo). */
export function fdConnection(fd: number): number | undefined {
  try {
    const m = /^fuse_connection:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
    return m?.[1] === undefined ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Whether `fd` is still this process's descriptor of FUSE connection `conn` (when known). */
export function stillServing(fd: number, conn: number | undefined): boolean {
  if (!isFuseDevice(fd)) return false;
  if (conn === undefined) return true;
  const now = fdConnection(fd);
  return now === undefined || now === conn;
}

// ---- dead mounts --------------------------------------------------------------------------------

/**
 * When the topmost mount at `mountpoint` is a fuse.unionfs-ts mount whose daemon is gone (stat says
 * ENOTCONN, "transport endpoint is not connected"), detaches it and returns a sentence saying so;
 * otherwise changes nothing and returns undefined.
 */
export function cleanDeadMount(mountpoint: string): string | undefined {
  const mnt = canonicalMountpoint(mountpoint);
  let top: MountRow | undefined;
  try {
    top = mountsAt(mnt).at(-1);
  } catch {
    return undefined;
  }
  if (top === undefined || top.fsType !== FS_TYPE) return undefined;
  try {
    fs.statSync(mnt);
    return undefined;
  } catch (err) {
    if (codeOf(err) !== "ENOTCONN") return undefined;
  }
  const [cmd, args] = unmountCommand(mnt, true);
  const r = runSync(cmd, args);
  if (isMounted(mnt, top.dev)) {
    const err = new FsError("EBUSY");
    err.message = `cannot remove the dead unionfs-ts mount at '${mountpoint}': ${r.stderr.split("\n")[0]}`;
    throw err;
  }
  return `removed a dead unionfs-ts mount at '${mountpoint}' (its daemon had gone)`;
}
