#!/usr/bin/env node
/**
 * `mount.fuse.unionfs-ts`: the helper mount(8) runs for `mount -t fuse.unionfs-ts SRC MNT -o OPTS`
 * (by hand, from /etc/fstab, or for `mount -o remount,… MNT`).
 *
 * Invariants:
 * - It translates mount(8)'s calling convention (SRC MNT [-sfnv] [-o OPTS] [-t TYPE]) into
 *   `unionfs-ts mount SRC MNT -o OPTS`; SRC is a branch list, or only a name when OPTS has lowerdir=.
 * - Options that only mean something to mount(8), fstab or systemd (`defaults`, `noauto`, `nofail`,
 *   `_netdev`, `user`, `x-systemd.*`, `comment=` …) are dropped, as util-linux's helpers do.
 * - `remount` changes the kernel mount's generic flags (ro/rw, nosuid, noatime …) with mount(2)'s
 *   MS_REMOUNT and touches nothing else; anything that would change the union itself is refused.
 * - Exit codes follow mount(8): 0 done, 1 bad usage of a remount, 32 any mount failure.
 */
import { spawnSync } from "node:child_process";
import { splitOptionList } from "./options";
import { VFS_FLAGS } from "../fuse/transport";
import { main } from "./main";

/** Options for mount(8), fstab or systemd only: never the filesystem's business. */
const USERSPACE_ONLY = new Set([
  "defaults",
  "auto",
  "noauto",
  "nofail",
  "_netdev",
  "user",
  "nouser",
  "users",
]);
const USERSPACE_PREFIXES = ["x-", "comment=", "owner", "group", "helper="];

export function isUserspaceOnly(option: string): boolean {
  return USERSPACE_ONLY.has(option) || USERSPACE_PREFIXES.some((p) => option.startsWith(p));
}

export interface HelperCall {
  positionals: string[];
  /** Every -o item, in order, userspace-only ones dropped. */
  options: string[];
}

export function parseHelperArgs(argv: readonly string[]): HelperCall {
  const positionals: string[] = [];
  const lists: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "-o" || a === "-t") {
      if (a === "-o" && argv[i + 1] !== undefined) lists.push(argv[i + 1] as string);
      i++;
    } else if (a.startsWith("-o") && a.length > 2) {
      lists.push(a.slice(2));
    } else if (!a.startsWith("-")) {
      positionals.push(a);
    }
  }
  const options = lists.flatMap(splitOptionList).filter((o) => !isUserspaceOnly(o));
  return { positionals, options };
}

/** The `unionfs-ts` arguments for a call that is not a remount. */
export function helperArgs(argv: readonly string[]): string[] {
  const { positionals, options } = parseHelperArgs(argv);
  return ["mount", ...positionals, ...(options.length > 0 ? ["-o", options.join(",")] : [])];
}

/** Options of every FUSE mount that mount(8) hands back on a remount: fixed at mount time. */
const FUSE_FIXED = [
  "user_id=",
  "group_id=",
  "default_permissions",
  "allow_other",
  "fd=",
  "rootmode=",
  "max_read=",
  "blksize=",
];

/** The mount(8) arguments of a remount (MS_REMOUNT with generic flags only), or a usage error line. */
export function remountArgs(call: HelperCall): string[] | string {
  const mnt = call.positionals[call.positionals.length - 1];
  if (mnt === undefined) return "remount: no mountpoint given";
  const asked = call.options.filter((o) => o !== "remount" && !FUSE_FIXED.some((f) => o.startsWith(f)));
  const other = asked.filter((o) => !VFS_FLAGS.has(o));
  if (other.length > 0) return `remount: only generic flags can change, not '${other.join(",")}'`;
  const flags = asked;
  return ["-i", "-o", ["remount", ...flags].join(","), "--", mnt];
}

function remount(call: HelperCall): number {
  const args = remountArgs(call);
  if (typeof args === "string") {
    process.stderr.write(`mount.fuse.unionfs-ts: ${args}\n`);
    return 1;
  }
  const r = spawnSync("mount", args, { stdio: ["ignore", "inherit", "inherit"], timeout: 30_000 });
  return r.status === 0 ? 0 : 32;
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const call = parseHelperArgs(argv);
  if (call.options.includes("remount")) process.exitCode = remount(call);
  // mount(8) and fstab tools read 32 as "mount failure" (util-linux's convention).
  else main(helperArgs(argv)).then((code) => (process.exitCode = code === 0 ? 0 : 32));
}
