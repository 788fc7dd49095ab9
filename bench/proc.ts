/**
 * What the bench reads from /proc: the mount table, a process's CPU time and peak memory, the machine's
 * busy time, cache drops by anyone, and the load average; plus dropping the caches.
 *
 * Invariants:
 * - Nothing here touches a path inside a mount: a hung FUSE daemon would hang the caller. Whether a path
 *   is mounted is read from /proc/self/mountinfo only.
 * - Every reader returns `undefined` (never throws) for a process that is gone.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";

/** Clock ticks per second of the CPU counters in /proc (USER_HZ; 100 on every Linux we run on). */
export const CLK_TCK = ((): number => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** Undoes mountinfo's octal escapes (`\040` space and so on). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountRow {
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string;
}

export function mountTable(): MountRow[] {
  const rows: MountRow[] = [];
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (sep < 0) continue;
    rows.push({
      mountPoint: unescapeMountField(f[4] ?? ""),
      fsType: f[sep + 1] ?? "",
      source: unescapeMountField(f[sep + 2] ?? ""),
      superOptions: f[sep + 3] ?? "",
    });
  }
  return rows;
}

export function mountAt(p: string): MountRow | undefined {
  return mountTable().find((m) => m.mountPoint === p);
}

/** Mountpoints at or below `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return mountTable()
    .map((m) => m.mountPoint)
    .filter((m) => m === dir || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

function statFields(pid: number | "self"): string[] | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ")".
  return raw.slice(raw.lastIndexOf(")") + 2).split(" ");
}

/** utime + stime of a process, all its threads, in clock ticks. */
export function cpuTicks(pid: number): number | undefined {
  const f = statFields(pid);
  if (!f) return undefined;
  return Number(f[11]) + Number(f[12]);
}

/** This process's own CPU ticks plus those of its children that have been waited for. */
export function selfAndChildrenTicks(): number {
  const f = statFields("self") ?? [];
  return Number(f[11] ?? 0) + Number(f[12] ?? 0) + Number(f[13] ?? 0) + Number(f[14] ?? 0);
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  const f = statFields(pid);
  return f !== undefined && f[0] !== "Z" && f[0] !== "X";
}

/** Peak resident set size (VmHWM) of a process, in KiB. */
export function peakRssKiB(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "latin1"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Busy CPU ticks of the whole machine (user, nice, system, irq, softirq, steal). */
export function machineBusyTicks(): number {
  const line = fs.readFileSync("/proc/stat", "latin1").split("\n", 1)[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
}

/** How many times anybody has dropped the caches since boot (page cache and slab counters summed). */
export function dropCount(): number {
  let n = 0;
  for (const line of fs.readFileSync("/proc/vmstat", "latin1").split("\n")) {
    const [k, v] = line.split(" ");
    if (k === "drop_pagecache" || k === "drop_slab") n += Number(v);
  }
  return n;
}

export function load1(): number {
  return Number(fs.readFileSync("/proc/loadavg", "latin1").split(" ")[0]);
}

/** `sync; echo 3 > /proc/sys/vm/drop_caches`. Returns false when the caches could not be dropped. */
export function dropCaches(): boolean {
  spawnSync("sync");
  try {
    fs.writeFileSync("/proc/sys/vm/drop_caches", "3\n");
    return true;
  } catch {
    return false;
  }
}
