/**
 * The union core's public face: build a `UnionOps` from a `UnionConfig`.
 *
 * Invariant: `createUnion` is the only place that turns plain config into layers and a work dir, and the
 * only core function that writes to disk before the first request (it prepares the work dir).
 */
import { WorkDir } from "../cow";
import { DirLayer, type Layer } from "../layer";
import { fromText } from "../sys/bytes";
import * as fs from "node:fs";
import { aufsWriter, overlayWriter, WORKDIR_NAME } from "../whiteout";
import { checkBranches, workdirOf } from "./branches";
import type { UnionConfig } from "./config";
import type { UnionOps } from "./types";
import { Union } from "./union";
import { IdMap } from "./idmap";

/**
 * The work dir, reached like the layers through a held directory fd: inside the writable layer by
 * default, or a private subdirectory of an explicit `workdir`.
 */
function workDirFor(config: UnionConfig, top: Layer | undefined): WorkDir | undefined {
  if (workdirOf(config) === undefined || top === undefined) return undefined;
  if (config.workdir === undefined) return new WorkDir(`${top.root}/${WORKDIR_NAME}`);
  const fd = fs.openSync(config.workdir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  return new WorkDir(`/proc/self/fd/${fd}/unionfs-ts`);
}

export function createUnion(config: UnionConfig): UnionOps {
  checkBranches(config.branches);
  const layers: Layer[] = config.branches.map(
    (b, i) => new DirLayer(i, fromText(b.path), i === 0 && b.mode === "rw", b.mode !== "rr"),
  );
  const work = workDirFor(config, layers[0]);
  work?.prepare();
  return new Union(layers, work, config.whiteout === "overlay" ? overlayWriter : aufsWriter, {
    uids: new IdMap(config.uidMap, config.squashUid),
    gids: new IdMap(config.gidMap, config.squashGid),
    noXattrs: config.noXattrs,
    noFsync: config.noFsync,
  });
}

export { Union, isPrivateXattr, type UnionOptions } from "./union";
export { IdMap, parseIdRanges, OVERFLOW_ID } from "./idmap";
export {
  parseBranches,
  checkBranches,
  checkMountpoint,
  checkWorkdir,
  workdirOf,
  UsageError,
} from "./branches";
export * from "./config";
export * from "./types";
