/**
 * Directory handles: a merged listing per handle.
 *
 * Invariants: a handle owns a snapshot of the merged listing, taken at its first readdir (handles.ts);
 * a caller's listing counts as reading the writable layer's directory (atime), the daemon's own
 * (`internal`) never does; a directory removed meanwhile lists empty, as getdents gives.
 */
import { codeOf, fsError, isAbsent } from "../errors";
import { flushPrefetch, prefetchWanted, relOf, type Layer } from "../layer";
import { DEFAULT_ATIME } from "./atime";
import { mergedListing } from "./listing";
import type { UnionState } from "./state";
import type { DirEntry } from "./types";

export class Dirs {
  constructor(private readonly s: UnionState) {}

  opendir(path: string, opts?: { internal?: boolean }): number {
    const r = this.s.need(path);
    const dirLayers = r.dirLayers;
    if (!dirLayers) throw fsError("ENOTDIR", path);
    const access = opts?.internal !== true;
    return this.s.handles.addDir(() => this.listingOf(path, dirLayers, access));
  }

  /**
   * The merged listing of directory `path`; empty once it has been removed (as getdents gives). With
   * `access`, reading it counts as a caller's access to the writable layer's directory (atime).
   */
  private listingOf(path: string, dirLayers: readonly number[], access: boolean): DirEntry[] {
    try {
      return mergedListing(this.s.layers, dirLayers, relOf(path), this.s.lookup.lowerDirs, access);
    } catch (err) {
      if (isAbsent(err)) return [];
      throw err;
    }
  }

  readdir(dh: number): readonly DirEntry[] {
    return this.s.handles.dir(dh);
  }

  releasedir(dh: number): void {
    this.s.handles.releaseDir(dh);
  }

  /**
   * Asks each read-only layer of directory `path` to warm its subdirectories (Layer.prefetch), named by
   * the listings the lookups will use (the cache's): the entries of those are looked up next when a walk
   * goes down. A hint: a failure only means no warming; while the layers would warm nothing (a warm
   * disk) nothing is gathered.
   */
  prefetchEntries(path: string): void {
    if (!prefetchWanted()) return;
    const rel = relOf(path);
    try {
      const dirLayers = this.s.need(path).dirLayers ?? [];
      for (const index of dirLayers) {
        const layer = this.s.layers[index] as Layer;
        if (layer.prefetch === undefined) continue;
        const dirs = this.s.lookup.lowerDirs.names(layer, rel)?.directories();
        if (dirs !== undefined && dirs.length > 0) layer.prefetch(rel, dirs);
      }
    } catch (err) {
      if (codeOf(err) === undefined) throw err;
    } finally {
      flushPrefetch();
    }
  }

  listingsTouchEveryTime(): boolean {
    return this.s.upper !== undefined && (this.s.opts.atime ?? DEFAULT_ATIME).dirs === "strictatime";
  }
}
