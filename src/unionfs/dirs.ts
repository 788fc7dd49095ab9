/**
 * Directory handles: a merged listing per handle.
 *
 * Invariants: a handle owns a snapshot of the merged listing, taken at its first readdir (handles.ts);
 * a caller's listing counts as reading the writable layer's directory (atime), the daemon's own
 * (`internal`) never does; a directory removed meanwhile lists empty, as getdents gives.
 */
import { fsError, isAbsent } from "../errors";
import { relOf } from "../layer";
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

  listingsTouchEveryTime(): boolean {
    return this.s.upper !== undefined && (this.s.opts.atime ?? DEFAULT_ATIME).dirs === "strictatime";
  }
}
