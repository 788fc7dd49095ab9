/**
 * Docker's overlay2 storage layout, resolved into a branch list.
 *
 * ROOT (like /var/lib/docker/overlay2) holds one directory per layer, `<ROOT>/<ID>/`, with
 *   - `diff/`: the layer's content (overlay-format whiteouts: 0/0 character devices, opaque xattrs);
 *   - `link`: its short name; `<ROOT>/l/<SHORT>` is a symlink to `../<ID>/diff`;
 *   - `lower` (every layer but a base layer): its lower layers, top first, as `l/SHORT1:l/SHORT2:…`
 *     relative to ROOT;
 *   - `work/` (layers that were mounted writable, such as a container's): overlayfs's work dir.
 * A container layer's chain includes its `-init` layer like any other.
 *
 * Invariants: only reads the disk; every failure is a UsageError naming the file or entry at fault; the
 * branches are real directories inside ROOT, distinct, top first.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import type { BranchSpec } from "../unionfs/config";
import { UsageError } from "../errors";
import { layerDir } from "./walk";

export interface Overlay2Mount {
  /** Top first: the layer's `diff/` (rw when it has `work/`), then its lowers (ro). */
  branches: BranchSpec[];
  /** `<ROOT>/<ID>/work` when the layer is writable. */
  workdir: string | undefined;
}

/** Checks a layer ID: one path component naming a layer directory. */
function checkId(id: string): void {
  if (id.length === 0 || id.includes("/") || id === "." || id === ".." || id === "l") {
    throw new UsageError(`'${id}' is not an overlay2 layer id`);
  }
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The lower entries of a layer (`l/SHORT` items), or [] for a base layer without a `lower` file. */
export function readLowerFile(layerPath: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(nodePath.join(layerPath, "lower"), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const trimmed = text.trim();
  if (trimmed === "") return [];
  return trimmed.split(":");
}

/** Resolves one `lower` item (relative to ROOT) to a real directory inside ROOT. */
function resolveLower(root: string, item: string, lowerFile: string): string {
  if (item === "" || nodePath.isAbsolute(item) || item.split("/").includes("..")) {
    throw new UsageError(`bad entry '${item}' in '${lowerFile}' (expected l/SHORTNAME)`);
  }
  let real: string;
  try {
    real = fs.realpathSync(nodePath.join(root, item));
  } catch {
    throw new UsageError(`lower layer '${item}' named in '${lowerFile}' does not exist`);
  }
  if (!real.startsWith(`${root}/`)) {
    throw new UsageError(`lower layer '${item}' named in '${lowerFile}' points outside '${root}'`);
  }
  if (!isDir(real)) throw new UsageError(`lower layer '${item}' named in '${lowerFile}' is not a directory`);
  return real;
}

/**
 * The branches of layer `id` under `root` (an overlay2 directory): its `diff/` on top, writable when the
 * layer has a `work/` directory (unless `readOnly`), then the lowers its `lower` file lists, in order.
 */
export function resolveOverlay2(root: string, id: string, readOnly = false): Overlay2Mount {
  const realRoot = layerDir(root, "overlay2 root");
  checkId(id);
  const layerPath = nodePath.join(realRoot, id);
  if (!isDir(layerPath)) throw new UsageError(`no layer '${id}' in '${root}'`);
  const diff = nodePath.join(layerPath, "diff");
  if (!isDir(diff)) throw new UsageError(`layer '${id}' has no diff/ directory`);
  const work = nodePath.join(layerPath, "work");
  const writable = !readOnly && isDir(work);
  const lowerFile = nodePath.join(layerPath, "lower");
  const lowers = readLowerFile(layerPath).map((item) => resolveLower(realRoot, item, lowerFile));
  const seen = new Set<string>([fs.realpathSync(diff)]);
  for (const l of lowers) {
    if (seen.has(l)) throw new UsageError(`'${lowerFile}' lists layer '${l}' twice (or the layer itself)`);
    seen.add(l);
  }
  return {
    branches: [
      { path: diff, mode: writable ? "rw" : "ro" },
      ...lowers.map((path): BranchSpec => ({ path, mode: "ro" })),
    ],
    workdir: writable ? work : undefined,
  };
}

/**
 * The `mount` arguments for an overlay2 layer: a branch list (explicit modes) and `-o` options
 * (overlay-format whiteouts, the layer's work dir). Paths that the branch-list or option syntax cannot
 * carry (`:` or `,`) are refused.
 */
export function overlay2MountArgs(m: Overlay2Mount): { branchList: string; options: string[] } {
  for (const b of m.branches) {
    if (b.path.includes(":")) throw new UsageError(`layer path '${b.path}' contains ':'`);
  }
  if (m.workdir?.includes(",")) throw new UsageError(`work dir '${m.workdir}' contains ','`);
  const branchList = m.branches.map((b) => `${b.path}=${b.mode}`).join(":");
  const options = ["whiteout=overlay", ...(m.workdir === undefined ? [] : [`workdir=${m.workdir}`])];
  return { branchList, options };
}
