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
 * - Only copy-up's own entry point copies anything; each directory materialized is reported changed.
 */
import { relOf, type WritableLayer } from "../layer";
import { whiteoutsIn, type WhiteoutWriter } from "../whiteout";
import type { Origins } from "./origin";
import type { Found, UnionView } from "./view";

const S_IFDIR = 0o040000;

/** What materializing needs of copy-up (copyup.ts `CopyUp` provides it). */
export interface TreeCopier {
  readonly upper: WritableLayer;
  readonly view: UnionView;
  readonly wh: WhiteoutWriter;
  /** Where directories made opaque record their origin. */
  readonly origins: Origins;
  /** Copies the object at `path` (found as `r`) up: a directory alone and empty, a file with its data. */
  copyUp(path: string, r?: Found): void;
  /** Directory `path`'s attributes changed in the writable layer. */
  changed(path: string): void;
}

/** Lower files with several names copied so far: `dev:ino` → the union path of their copy. */
type Links = Map<string, string>;

/** Makes directory `path` (found as `r`) live entirely in the top layer, opaque. */
export function materialize(cu: TreeCopier, path: string, r: Found): void {
  if (upperOnly(cu, r)) return;
  try {
    materializeDir(cu, path, r, new Map());
  } finally {
    cu.view.invalidate();
  }
}

function upperOnly(cu: TreeCopier, r: Found): boolean {
  return r.dirLayers?.length === 1 && r.dirLayers[0] === cu.upper.index;
}

function materializeDir(cu: TreeCopier, path: string, r: Found, links: Links): void {
  const origin = cu.view.inoOf(path, r);
  cu.copyUp(path);
  const rel = relOf(path);
  for (const name of cu.view.names(path, cu.view.dirLayersOf(path) ?? [])) {
    const childPath = `${rel}/${name}`;
    const child = cu.view.resolve(childPath);
    if (child === undefined) continue;
    if (child.dirLayers) {
      if (!upperOnly(cu, child)) materializeDir(cu, childPath, child, links);
    } else if (child.layer !== cu.upper.index) {
      copyFile(cu, childPath, child, links);
    }
  }
  cu.origins.write(cu.upper, rel, origin);
  cu.wh.makeOpaque(cu.upper, rel);
  cu.view.invalidate();
  dropWhiteouts(cu.upper, rel);
  cu.upper.utimens(rel, r.st.atimeNs, r.st.mtimeNs);
  cu.changed(path);
}

/** Copies a lower file up; a further name of a lower file already copied becomes a link to that copy. */
function copyFile(cu: TreeCopier, path: string, r: Found, links: Links): void {
  const key = r.st.nlink > 1n ? `${r.st.dev}:${r.st.ino}` : undefined;
  const first = key === undefined ? undefined : links.get(key);
  if (first !== undefined) {
    cu.upper.link(relOf(first), relOf(path));
    return;
  }
  cu.copyUp(path, r);
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
