/**
 * What copy-up needs to know of the union above it: where objects are and what number the union reports
 * for them. The union implements it over its lookups (src/unionfs); nothing here calls back into copy-up.
 */
import type { Stat } from "../layer";

/** What names an object: its device and inode number. */
export type InoOf = Pick<Stat, "dev" | "ino">;

/** Where the union finds an object: the topmost layer that has it and, for a directory, its layers. */
export interface Found {
  layer: number;
  st: Stat;
  /** A directory's merged layers, topmost first; undefined for everything else. */
  dirLayers: readonly number[] | undefined;
  /**
   * For a directory merged from several layers: the bottom-most one's device and inode number, when the
   * lookup took them (that number is the directory's). From a read-only layer, so never stale.
   */
  bottom?: InoOf | undefined;
}

export interface UnionView {
  /** The object at union path `path` as it is now (copies made so far included). */
  resolve(path: string): Found | undefined;
  /** The merged layers of directory `path`; undefined when it is not a visible directory. */
  dirLayersOf(path: string): readonly number[] | undefined;
  /** The names the merged directory `path` (made of `dirLayers`) shows. */
  names(path: string, dirLayers: readonly number[]): string[];
  /** The inode number the union reports for the object at `path`, found as `r`. */
  inoOf(path: string, r: Found): bigint;
  /** Copy-up changed the directory structure: whatever the union cached about it is stale. */
  invalidate(): void;
}
