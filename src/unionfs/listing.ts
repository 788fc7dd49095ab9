/**
 * Merged directory listings.
 *
 * Invariants: the union of the names of every merged layer, the top one winning; names whited out by a
 * higher layer and the whiteout format's own names never appear; the order is byte order of the names,
 * so it is the same on every open and does not depend on which layer an entry came from. With a
 * `LowerDirCache`, read-only layers are listed from it (a directory missing from a layer reads as empty
 * there, as the cache records it), writable ones always afresh. Only a listing made for a caller
 * (`access`) changes the writable layer's directory's access time (per the union's atime policy).
 */
import type { Layer } from "../layer";
import { isReservedName, whiteoutsIn } from "../whiteout";
import type { LowerDirCache } from "./dircache";
import type { DirEntry } from "./types";

/** Inode number reported in a plain READDIR entry when it is not known without a stat. */
export const UNKNOWN_INO = 0xffffffffn;

export function mergedListing(
  layers: readonly Layer[],
  dirLayers: readonly number[],
  rel: string,
  lowerDirs?: LowerDirCache,
  access = false,
): DirEntry[] {
  const seen = new Map<string, DirEntry>();
  const hidden = new Set<string>();
  for (const index of dirLayers) {
    const layer = layers[index] as Layer;
    const raw = lowerDirs ? lowerDirs.list(layer, rel, access) : layer.readdir(rel, access);
    const whiteouts = whiteoutsIn(layer, rel, raw);
    for (const e of raw) {
      if (isReservedName(e.name) || seen.has(e.name) || hidden.has(e.name)) continue;
      if (whiteouts.get(e.name) === e.name) continue; // a whiteout by itself (overlay formats)
      seen.set(e.name, { name: e.name, type: e.type, ino: UNKNOWN_INO });
    }
    for (const name of whiteouts.keys()) hidden.add(name);
  }
  return [...seen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
