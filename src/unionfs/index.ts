/**
 * The union core's public face: build a `UnionOps` from a `UnionConfig`.
 *
 * Invariant: `createUnion` is the only place that turns plain config into layers and a work dir, and the
 * only core function that writes to disk before the first request (it prepares the work dir).
 */
import { WorkDir } from "../cow";
import { openLayer, type Layer, type LayerFactory } from "../layer";
import { codeOf, UsageError } from "../errors";
import { fromText } from "../sys/bytes";
import { privateXattrNamespace } from "../sys/xattrns";
import { whiteoutWriter } from "../whiteout";
import { checkBranches, workdirOf } from "./branches";
import type { UnionConfig } from "./config";
import { DEFAULT_ATIME, NO_ATIME, type AtimePolicy } from "./atime";
import type { UnionOps } from "./types";
import { Union } from "./union";
import { IdMap } from "./idmap";

/**
 * Prepares the work dir (inside the writable layer by default, or a private subdirectory of `workdir`);
 * a failure is one line for the user (a writable branch that is itself a union refuses `.wh.` names, so
 * the default work dir cannot be made there).
 */
function prepareWorkDir(config: UnionConfig): WorkDir | undefined {
  const path = workdirOf(config);
  if (path === undefined) return undefined;
  try {
    return WorkDir.prepare(fromText(path));
  } catch (err) {
    const code = codeOf(err);
    if (code === undefined) throw err;
    const hint =
      code === "EPERM" || code === "EACCES" || code === "EROFS"
        ? " (is the writable branch read-only, or itself a union mount? name a workdir= on its filesystem)"
        : "";
    throw new UsageError(`cannot prepare the work dir '${path}': ${code}${hint}`);
  }
}

/**
 * What callers' reads do to access times in each layer: the union's policy in the writable one; nothing
 * in a read-only one, which needs a noatime mount of it where the kernel reads its files itself
 * (passthrough, exec) and for readlink, which no open flag spares.
 */
function atimeOfLayers(config: UnionConfig): (i: number) => AtimePolicy {
  const writable = config.branches[0]?.mode === "rw";
  return (i) => (i === 0 && writable ? (config.atime ?? DEFAULT_ATIME) : NO_ATIME);
}

/**
 * The union `config` describes, its branches opened by `open` (default `openLayer`: the layer kind a
 * branch's path names).
 */
export function createUnion(config: UnionConfig, open: LayerFactory = openLayer): UnionOps {
  checkBranches(config.branches);
  const atimeOf = atimeOfLayers(config);
  const layers: Layer[] = config.branches.map((b, index) =>
    open({
      path: fromText(b.path),
      index,
      writable: index === 0 && b.mode === "rw",
      honoursWhiteouts: b.mode !== "rr",
      atime: atimeOf(index),
    }),
  );
  const work = prepareWorkDir(config);
  const xattrs = config.xattrs ?? privateXattrNamespace();
  return new Union(layers, work, whiteoutWriter(config.whiteout, xattrs), {
    uids: new IdMap(config.uidMap, config.squashUid),
    gids: new IdMap(config.gidMap, config.squashGid),
    noXattrs: config.noXattrs,
    noFsync: config.noFsync,
    passthrough: config.passthrough,
    atime: config.atime,
    xattrs,
  });
}

export { Union, isPrivateXattr, type UnionOptions } from "./union";
export { IdMap, parseIdRanges, OVERFLOW_ID } from "./idmap";
export { atimePolicyOf, touchOf, DEFAULT_ATIME, type AccessTouch } from "./atime";
export { parseBranches, checkBranches, checkMountpoint, checkWorkdir, workdirOf } from "./branches";
export { UsageError } from "../errors";
export * from "./config";
export * from "./types";
