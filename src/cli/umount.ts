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
import { UsageError } from "../errors";
import { FS_TYPE } from "../fuse";
import { fromText } from "../sys/bytes";
import { mountTable, type MountRow } from "../sys/mountinfo";

/**
 * The mount-table path of `mountpoint`: as given (made absolute) when it is mounted there, else with
 * symlinks resolved (as umount(8) does). A mount whose daemon died cannot be stat'ed, which is why the
 * path as given is tried first.
 */
function mountedPath(mountpoint: string, table: readonly MountRow[]): string {
  const mnt = nodePath.resolve(mountpoint);
  if (table.some((e) => e.mountPoint === fromText(mnt))) return mnt;
  try {
    return fs.realpathSync(mnt);
  } catch {
    return mnt;
  }
}

export function umountCommand(mountpoint: string, flags: { lazy?: boolean }): number {
  const table = mountTable();
  const mnt = mountedPath(mountpoint, table);
  const entry = table.find((e) => e.mountPoint === fromText(mnt));
  if (!entry) throw new UsageError(`'${mountpoint}' is not mounted`);
  if (entry.fsType !== FS_TYPE)
    throw new UsageError(`'${mountpoint}' is a ${entry.fsType} mount, not unionfs-ts`);
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
