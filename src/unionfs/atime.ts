/**
 * Access times: which mode a union's mount asks for, and what a read will do under it.
 *
 * Invariants (as kernel overlayfs, checked on Linux 6.18):
 * - Only objects of the writable branch ever get a new access time, and only from a caller's read
 *   (read, exec, mmap, a listing); the union's own reads (copy-up, emptiness checks) and everything in a
 *   read-only branch never change one (src/layer/atime.ts does the reading).
 * - The mode comes from the generic mount flags, in order, as mount(2) reads them: `strictatime` wins,
 *   else `noatime`, else relatime (the default); `nodiratime` spares directories; a read-only mount
 *   (`ro` last among ro/rw) changes nothing.
 * - relatime updates when the access time is not after the modification or change time, or is a day
 *   old (the kernel's relatime_need_update); strictatime on every read; noatime never.
 */
import type { AtimeMode, AtimePolicy } from "../layer/atime";

export type { AtimeMode, AtimePolicy };

export const DEFAULT_ATIME: AtimePolicy = { files: "relatime", dirs: "relatime" };
export const NO_ATIME: AtimePolicy = { files: "noatime", dirs: "noatime" };

/**
 * What reading through an open file does to its access time: `none` never (a read-only branch, a
 * handle that cannot read, noatime); `later` not at the next read (relatime, read since it changed);
 * `next` at the next read (relatime); `every` at every read (strictatime).
 */
export type AccessTouch = "none" | "later" | "next" | "every";

/** The policy a list of generic mount flags (MountRequest.flags) gives. */
export function atimePolicyOf(flags: readonly string[]): AtimePolicy {
  const on = new Map<string, boolean>();
  const set = (name: string, value: boolean): void => void on.set(name, value);
  for (const f of flags) {
    if (f === "ro" || f === "rw") set("ro", f === "ro");
    else if (f === "noatime" || f === "atime") set("noatime", f === "noatime");
    else if (f === "strictatime" || f === "nostrictatime") set("strict", f === "strictatime");
    else if (f === "nodiratime" || f === "diratime") set("nodiratime", f === "nodiratime");
  }
  if (on.get("ro") === true) return NO_ATIME;
  const files: AtimeMode =
    on.get("strict") === true ? "strictatime" : on.get("noatime") === true ? "noatime" : "relatime";
  return { files, dirs: on.get("nodiratime") === true ? "noatime" : files };
}

const DAY_S = 24n * 60n * 60n;
const S_NS = 1_000_000_000n;

/** Times as `stat` gives them, in nanoseconds. */
export interface Times {
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** What the next read of an object with times `t` does under `mode` at `nowNs`. */
export function touchOf(mode: AtimeMode, t: Times, nowNs: bigint): AccessTouch {
  if (mode === "noatime") return "none";
  if (mode === "strictatime") return "every";
  const stale = t.mtimeNs >= t.atimeNs || t.ctimeNs >= t.atimeNs;
  return stale || nowNs / S_NS - t.atimeNs / S_NS >= DAY_S ? "next" : "later";
}
