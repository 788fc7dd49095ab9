/**
 * `unionfs-ts umount`: end a unionfs-ts mount; its daemon then exits by itself.
 *
 * Invariant: only mounts whose type is fuse.unionfs-ts are touched (a symlink to a mountpoint names
 * that mount, as with umount(8)); a busy mount is left alone unless
 * --lazy is given (then it is detached and goes away when the last open file is closed).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { UsageError } from "../unionfs/branches";

export const FS_TYPE = "fuse.unionfs-ts";

interface MountEntry {
  mountpoint: string;
  fstype: string;
}

export function mountTable(): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const fields = line.split(" ");
    const sep = fields.indexOf("-");
    if (sep < 0) continue;
    out.push({ mountpoint: unescape(fields[4] ?? ""), fstype: fields[sep + 1] ?? "" });
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The mount-table path of `mountpoint`: as given (made absolute) when it is mounted there, else with
 * symlinks resolved (as umount(8) does). A mount whose daemon died cannot be stat'ed, which is why the
 * path as given is tried first.
 */
function mountedPath(mountpoint: string, table: readonly MountEntry[]): string {
  const mnt = nodePath.resolve(mountpoint);
  if (table.some((e) => e.mountpoint === mnt)) return mnt;
  try {
    return fs.realpathSync(mnt);
  } catch {
    return mnt;
  }
}

export function umountCommand(mountpoint: string, flags: { lazy?: boolean }): number {
  const table = mountTable();
  const mnt = mountedPath(mountpoint, table);
  const entry = table.find((e) => e.mountpoint === mnt);
  if (!entry) throw new UsageError(`'${mountpoint}' is not mounted`);
  if (entry.fstype !== FS_TYPE)
    throw new UsageError(`'${mountpoint}' is a ${entry.fstype} mount, not unionfs-ts`);
  const args = flags.lazy ? ["-l", mnt] : [mnt];
  const r = spawnSync("umount", args, { encoding: "utf8" });
  if (r.status !== 0) {
    const why = (r.stderr || "").trim().split("\n").pop() ?? "";
    const busy = /busy/i.test(why);
    throw new UsageError(
      busy
        ? `'${mountpoint}' is busy (files are open); use --lazy to detach it anyway`
        : `umount failed: ${why}`,
    );
  }
  return 0;
}
