/**
 * Mount arguments: the branch-list form (`mount A:B C`) and the fuse-overlayfs form
 * (`-o lowerdir=L1:L2,upperdir=U,workdir=W MNT`, as container engines call a `mount_program`).
 *
 * Invariants: parsing never touches the disk; empty items are ignored (engines pass `a,,b` and trailing
 * commas); commas inside double quotes do not split; an unknown option is an error in the branch-list
 * form and a warning in the fuse-overlayfs form (as fuse-overlayfs does); relative paths are resolved
 * against the caller's cwd.
 */
import * as nodePath from "node:path";
import { UsageError } from "../errors";
import { parseBranches } from "../unionfs/branches";
import type { BranchSpec, UnionConfig } from "../unionfs/config";
import { parseIdRanges } from "../unionfs/idmap";
import { isWhiteoutFormat, WHITEOUT_FORMATS, type WhiteoutFormat } from "../whiteout";
import { VFS_FLAGS } from "../fuse/transport";
import { splitOptionItems } from "./option-list";

export interface MountOptions {
  config: UnionConfig;
  mountpoint: string;
  fsname: string;
  debug: boolean;
  warnings: string[];
  /** log=FILE: the daemon's log (timestamped lines) instead of stderr. */
  logFile?: string;
  /** pidfile=FILE: the daemon's pid, written once the mount is live, removed when it ends. */
  pidFile?: string;
  /** Generic VFS flags for the kernel mount, in order (`ro` included): the kernel enforces them. */
  flags: string[];
}

/** Options every form accepts and ignores: FUSE options it always sets, kernel-overlayfs tuning. */
const IGNORED = new Set([
  "allow_other",
  "default_permissions",
  "fsname",
  "subtype",
  "context",
  "xattr_permissions",
  "redirect_dir",
  "index",
  "metacopy",
  "xino",
  "static_nlink",
  "threaded",
  "plugins",
  "noacl",
  "userxattr",
  // served by the shared process (cli/shared) when it can; otherwise the mount gets its own daemon
  "shared",
]);

/** `value` as the name of a whiteout format; `option` names it in the error. */
export function whiteoutFormat(value: string, option: string): WhiteoutFormat {
  if (!isWhiteoutFormat(value)) {
    throw new UsageError(`${option} must be ${WHITEOUT_FORMATS.join(" or ")}, not '${value}'`);
  }
  return value;
}

/** Splits `a=1,b="x,y",,c` into ["a=1", 'b="x,y"', "c"]. */
export function splitOptionList(list: string): string[] {
  return splitOptionItems(list, (l) => new UsageError(`unbalanced quote in mount options '${l}'`));
}

type Option = { key: string; value: string | undefined };

function parseItems(optionLists: readonly string[]): Option[] {
  return optionLists.flatMap(splitOptionList).map((item) => {
    const eq = item.indexOf("=");
    return eq < 0 ? { key: item, value: undefined } : { key: item.slice(0, eq), value: item.slice(eq + 1) };
  });
}

/**
 * Builds the mount from the positional arguments (`[BRANCHES|FSNAME] MOUNTPOINT`) and every `-o` list.
 * With `lowerdir=` the branches come from the options and a first positional is only a name.
 */
export function buildMountOptions(
  positionals: readonly string[],
  optionLists: readonly string[],
  cwd: string,
): MountOptions {
  if (positionals.length === 0 || positionals.length > 2) {
    throw new UsageError("expected BRANCHES MOUNTPOINT, or -o lowerdir=… MOUNTPOINT");
  }
  const items = parseItems(optionLists);
  const overlayStyle = items.some((o) => o.key === "lowerdir");
  const mountpoint = nodePath.resolve(cwd, positionals[positionals.length - 1] as string);
  let branches: BranchSpec[];
  let fsname: string;
  if (overlayStyle) {
    branches = overlayBranches(items, cwd);
    fsname = positionals.length === 2 ? (positionals[0] as string) : "unionfs-ts";
  } else {
    if (positionals.length !== 2) throw new UsageError("expected BRANCHES MOUNTPOINT (or -o lowerdir=…)");
    fsname = positionals[0] as string;
    branches = parseBranches(fsname, cwd);
  }
  const config: UnionConfig = { branches, whiteout: overlayStyle ? "overlay" : "aufs" };
  const out: MountOptions = { config, mountpoint, fsname, debug: false, warnings: [], flags: [] };
  for (const o of items) applyOption(out, o, cwd, overlayStyle);
  // `ro` leaves no writable branch, so nothing is ever copied: a workdir= is not needed (overlayfs too
  // mounts upperdir=,workdir=,ro).
  if (out.flags.includes("ro")) delete config.workdir;
  return out;
}

function overlayBranches(items: Option[], cwd: string): BranchSpec[] {
  const get = (k: string): string | undefined => items.filter((o) => o.key === k).pop()?.value;
  const lower = get("lowerdir");
  if (!lower) throw new UsageError("mount option 'lowerdir' needs a value");
  const lowers = lower.split(":").map((p, i) => {
    if (p.length === 0) throw new UsageError(`empty directory at position ${i + 1} of lowerdir`);
    return { path: nodePath.resolve(cwd, p), mode: "ro" as const };
  });
  const upper = get("upperdir");
  const work = get("workdir");
  if (upper === undefined && work !== undefined) throw new UsageError("workdir= needs upperdir=");
  if (upper !== undefined && work === undefined) throw new UsageError("upperdir= needs workdir=");
  return upper === undefined ? lowers : [{ path: nodePath.resolve(cwd, upper), mode: "rw" }, ...lowers];
}

function applyOption(out: MountOptions, o: Option, cwd: string, overlayStyle: boolean): void {
  const c = out.config;
  switch (o.key) {
    case "lowerdir":
    case "upperdir":
      if (!overlayStyle) throw new UsageError(`'${o.key}' cannot be combined with a branch list`);
      return;
    case "workdir":
      c.workdir = nodePath.resolve(cwd, need(o));
      return;
    case "ro":
      for (const b of c.branches) if (b.mode === "rw") b.mode = "ro";
      out.flags.push("ro");
      return;
    case "debug":
      out.debug = true;
      return;
    case "log":
      out.logFile = nodePath.resolve(cwd, need(o));
      return;
    case "pidfile":
      out.pidFile = nodePath.resolve(cwd, need(o));
      return;
    case "whiteout": {
      c.whiteout = whiteoutFormat(need(o), "whiteout=");
      return;
    }
    case "uidmapping":
      c.uidMap = parseIdRanges(need(o), "uidmapping");
      return;
    case "gidmapping":
      c.gidMap = parseIdRanges(need(o), "gidmapping");
      return;
    case "squash_to_root":
      c.squashUid = 0;
      c.squashGid = 0;
      return;
    case "squash_to_uid":
      c.squashUid = idValue(o);
      return;
    case "squash_to_gid":
      c.squashGid = idValue(o);
      return;
    case "noxattrs":
      c.noXattrs = o.value !== "0";
      return;
    case "fsync":
      c.noFsync = o.value === "0";
      return;
    case "volatile": // as overlayfs: no syncs at all, copy-ups included
      c.noFsync = true;
      return;
    case "passthrough": {
      const v = need(o);
      if (v !== "auto" && v !== "lower" && v !== "off")
        throw new UsageError(`passthrough= must be auto, lower or off, not '${v}'`);
      c.passthrough = v;
      return;
    }
    case "io_uring":
      if (o.value !== undefined && o.value !== "1" && o.value !== "0")
        throw new UsageError(`io_uring takes no value (or 1 or 0), not '${o.value}'`);
      c.ioUring = o.value !== "0";
      return;
    case "timeout": {
      const n = Number(need(o));
      if (!Number.isFinite(n) || n < 0)
        throw new UsageError(`timeout= needs a number of seconds, not '${o.value}'`);
      c.cacheTimeout = n;
      return;
    }
  }
  if (VFS_FLAGS.has(o.key) && o.value === undefined) {
    out.flags.push(o.key);
    return;
  }
  if (IGNORED.has(o.key)) return;
  if (!overlayStyle) throw new UsageError(`unknown mount option '${o.key}'`);
  out.warnings.push(`unknown mount option '${o.key}' ignored`);
}

function need(o: Option): string {
  if (o.value === undefined || o.value.length === 0)
    throw new UsageError(`mount option '${o.key}' needs a value`);
  return o.value;
}

function idValue(o: Option): number {
  const n = Number(need(o));
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`mount option '${o.key}' needs an id, not '${o.value}'`);
  return n;
}
