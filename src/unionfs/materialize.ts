/**
 * Materializing a merged directory: making it, and everything below it, live entirely in the writable
 * layer, opaque. This is what lets a directory that exists in a lower layer be renamed (overlayfs
 * answers EXDEV there) or exchanged.
 *
 * Invariants:
 * - Done in place, depth first, and every step leaves the union's view as it was: a lower directory is
 *   copied up empty (it still merges with its lower part), lower files are copied up beside it, and a
 *   directory is made opaque only once everything it shows is in the top layer. A crash at any point
 *   leaves the same view, partly copied up. Upper objects never move, so they keep their inodes.
 * - Inode numbers do not change: each directory made opaque records the number it reported while
 *   merged (its bottom-most layer's) as its origin; copied files record theirs (copy-up); names of one
 *   lower file hard-linked in the materialized tree become hard links of one copy.
 * - Whiteouts left in a directory made opaque hide nothing any more, and are removed.
 */
import type { Origins } from "../cow";
import type { Layer, WritableLayer } from "../layer";
import { whiteoutsIn, type WhiteoutWriter } from "../whiteout";
import { mergedListing } from "./listing";
import { relOf, type Resolved, type Resolver } from "./resolve";

const S_IFDIR = 0o040000;

export interface MaterializeContext {
  layers: readonly Layer[];
  upper: WritableLayer;
  resolver: Resolver;
  wh: WhiteoutWriter;
  /** Where directories made opaque record their origin. */
  origins: Origins;
  /** The inode number the union reports for the object at `path`. */
  inoOf: (path: string, r: Resolved) => bigint;
  /** Makes sure directory `path` exists in the top layer (copying it and its parents up). */
  ensureUpperDir: (path: string) => void;
  /** Copies the lower non-directory at `path` up, recording its inode number as origin. */
  copyUpFile: (path: string, r: Resolved) => void;
}

/** Lower files with several names copied so far: `dev:ino` → the union path of their copy. */
type Links = Map<string, string>;

/** Makes directory `path` (resolved as `r`) live entirely in the top layer, opaque. */
export function materialize(ctx: MaterializeContext, path: string, r: Resolved): void {
  if (upperOnly(ctx, r)) return;
  try {
    materializeDir(ctx, path, r, new Map());
  } finally {
    ctx.resolver.invalidate();
  }
}

function upperOnly(ctx: MaterializeContext, r: Resolved): boolean {
  return r.dirLayers?.length === 1 && r.dirLayers[0] === ctx.upper.index;
}

function materializeDir(ctx: MaterializeContext, path: string, r: Resolved, links: Links): void {
  const origin = ctx.inoOf(path, r);
  ctx.ensureUpperDir(path);
  const rel = relOf(path);
  const dirLayers = ctx.resolver.dirLayersOf(path) ?? [];
  for (const e of mergedListing(ctx.layers, dirLayers, rel, ctx.resolver.lowerDirs)) {
    const childPath = `${rel}/${e.name}`;
    const child = ctx.resolver.resolve(childPath);
    if (child === undefined) continue;
    if (child.dirLayers) {
      if (!upperOnly(ctx, child)) materializeDir(ctx, childPath, child, links);
    } else if (child.layer !== ctx.upper.index) {
      copyFile(ctx, childPath, child, links);
    }
  }
  ctx.origins.write(ctx.upper, rel, origin);
  ctx.wh.makeOpaque(ctx.upper, rel);
  ctx.resolver.invalidate();
  dropWhiteouts(ctx.upper, rel);
  ctx.upper.utimens(rel, r.st.atimeNs, r.st.mtimeNs);
}

/** Copies a lower file up; a further name of a lower file already copied becomes a link to that copy. */
function copyFile(ctx: MaterializeContext, path: string, r: Resolved, links: Links): void {
  const key = r.st.nlink > 1n ? `${r.st.dev}:${r.st.ino}` : undefined;
  const first = key === undefined ? undefined : links.get(key);
  if (first !== undefined) return ctx.upper.link(relOf(first), relOf(path));
  ctx.copyUpFile(path, r);
  if (key !== undefined) links.set(key, path);
}

/** Removes the whiteouts of the opaque top-layer directory `rel` (its opaque marker stays). */
function dropWhiteouts(upper: WritableLayer, rel: string): void {
  const entries = upper.readdir(rel);
  const markers = new Set(whiteoutsIn(upper, rel, entries).values());
  for (const e of entries) {
    if (markers.has(e.name) && e.type !== S_IFDIR) upper.unlink(`${rel}/${e.name}`);
  }
}
