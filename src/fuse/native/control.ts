/**
 * The FUSE device descriptors of this process (which tell when libfuse stopped serving), and clearing a
 * dead mount a crashed daemon left behind.
 *
 * Invariants:
 * - Nothing here stats a path inside a live mount of this process: the JS thread that would have to
 *   answer is the one asking.
 * - A mount is "ours" when its type is fuse.unionfs-ts; `cleanDeadMount` touches only such a mount, and
 *   only when stat answers ENOTCONN (its daemon is gone).
 */
import * as fs from "node:fs";
import { FsError, codeOf } from "../../errors";
import { isMounted, mountsAt, runSync, unmountCommand, type MountRow } from "../control";
import { canonicalMountpoint } from "../lifecycle";
import { FS_TYPE } from "../transport";

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
