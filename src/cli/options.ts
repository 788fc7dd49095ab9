/**
 * `-o` mount options: parsing the comma-separated list and turning it plus a branch list into a config.
 *
 * Invariants: parsing never touches the disk; empty items are ignored (engines pass `a,,b` and trailing
 * commas); commas inside double quotes do not split; an unknown option is a `UsageError`.
 */
import { UsageError, parseBranches } from "../unionfs/branches";
import type { BranchSpec, UnionConfig } from "../unionfs/config";
import * as nodePath from "node:path";

export interface MountOptions {
  config: UnionConfig;
  debug: boolean;
}

/** Splits `a=1,b="x,y",,c` into ["a=1", 'b="x,y"', "c"]. */
export function splitOptionList(list: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (const ch of list) {
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      if (cur.length > 0) out.push(cur);
      cur = "";
    } else cur += ch;
  }
  if (quoted) throw new UsageError(`unbalanced quote in mount options '${list}'`);
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Builds the union config from the branch list and every `-o` value given. */
export function buildMountOptions(
  branchList: string,
  optionLists: readonly string[],
  cwd: string,
): MountOptions {
  const branches: BranchSpec[] = parseBranches(branchList, cwd);
  const config: UnionConfig = { branches, whiteout: "aufs" };
  let debug = false;
  for (const item of optionLists.flatMap(splitOptionList)) {
    const eq = item.indexOf("=");
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? undefined : item.slice(eq + 1);
    switch (key) {
      case "workdir":
        config.workdir = nodePath.resolve(cwd, requireValue(key, value));
        break;
      case "ro":
        for (const b of branches) if (b.mode === "rw") b.mode = "ro";
        break;
      case "rw":
      case "allow_other":
      case "default_permissions":
        break;
      case "debug":
        debug = true;
        break;
      default:
        throw new UsageError(`unknown mount option '${key}'`);
    }
  }
  return { config, debug };
}

function requireValue(key: string, value: string | undefined): string {
  if (value === undefined || value.length === 0) throw new UsageError(`mount option '${key}' needs a value`);
  return value;
}
