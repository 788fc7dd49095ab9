/**
 * Materializing a merged directory: replacing it, in one atomic step, by an opaque copy of its merged
 * view that lives entirely in the writable layer. This is what lets a directory that exists in a lower
 * layer be renamed (overlayfs answers EXDEV there) or exchanged.
 *
 * Invariants:
 * - The copy is built complete in the work dir (files already in the top layer are hard-linked, lower
 *   ones cloned or copied, subdirectories merged recursively) and published by a single rename, or by a
 *   RENAME_EXCHANGE with the old top-layer directory, which is then deleted from the work dir. A crash
 *   at any point leaves the old or the new directory visible, with the same contents either way.
 * - The view through the union does not change; only where its bytes live does.
 */
import * as fs from "node:fs";
import { copyObject, copyTimes, type CopyUpOptions, type WorkDir } from "../cow";
import type { Layer } from "../layer";
import { bytesOf } from "../sys/bytes";
import * as sys from "../sys/libc";
import type { WhiteoutWriter } from "../whiteout";
import { mergedListing } from "./listing";
import { relOf, type Resolved, type Resolver } from "./resolve";
import { RENAME_EXCHANGE } from "./types";

export interface MaterializeContext {
  layers: readonly Layer[];
  upper: Layer;
  work: WorkDir;
  resolver: Resolver;
  wh: WhiteoutWriter;
  skipXattr: (name: string) => boolean;
  /** The inode number the union reports for a lower object (recorded on its copy). */
  inoOf: (st: import("../sys/stat").Stat) => bigint;
  /** Copies the parent directory of `path` up (the new directory's parent must exist on top). */
  ensureUpperDir: (path: string) => void;
}

/** Makes directory `path` (resolved as `r`) live entirely in the top layer, opaque. */
export function materialize(ctx: MaterializeContext, path: string, parent: string, r: Resolved): void {
  const dirLayers = r.dirLayers ?? [];
  if (dirLayers.length === 1 && dirLayers[0] === ctx.upper.index) return;
  const tmp = ctx.work.tempPath();
  try {
    copyMergedTree(ctx, path, r, tmp);
    const rel = relOf(path);
    if (dirLayers[0] === ctx.upper.index) {
      ctx.upper.withPath(rel, (target) => sys.renameat2(tmp, target, RENAME_EXCHANGE));
    } else {
      ctx.ensureUpperDir(parent);
      ctx.upper.withPath(rel, (target) => fs.renameSync(bytesOf(tmp), bytesOf(target)));
    }
  } finally {
    fs.rmSync(bytesOf(tmp), { recursive: true, force: true });
    ctx.resolver.invalidate();
  }
}

function copyMergedTree(ctx: MaterializeContext, path: string, r: Resolved, dest: string): void {
  const rel = relOf(path);
  const from = ctx.layers[r.layer] as Layer;
  copyObject(from, rel, r.st, dest, { withData: false, skipXattr: ctx.skipXattr });
  for (const e of mergedListing(ctx.layers, r.dirLayers ?? [], rel)) {
    const childPath = `${rel}/${e.name}`;
    const child = ctx.resolver.resolve(childPath);
    if (!child) continue;
    const childDest = `${dest}/${e.name}`;
    if (child.dirLayers) copyMergedTree(ctx, childPath, child, childDest);
    else if (child.layer === ctx.upper.index)
      ctx.upper.withPath(childPath, (p) => fs.linkSync(bytesOf(p), bytesOf(childDest)));
    else copyObject(ctx.layers[child.layer] as Layer, childPath, child.st, childDest, opts(ctx, child));
  }
  ctx.wh.makeOpaque(dest);
  copyTimes(r.st, dest);
}

function opts(ctx: MaterializeContext, r: Resolved): CopyUpOptions {
  return { withData: true, skipXattr: ctx.skipXattr, origin: ctx.inoOf(r.st) };
}
