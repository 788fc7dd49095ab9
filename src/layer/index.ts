/**
 * Layers: one tree of the union each, read through `Layer` and written through `WritableLayer`
 * (types.ts states the interface and its invariants); `openLayer` (open.ts) makes them.
 */
export { openLayer, openReadOnly, openWritableDir, isWritable, isTarArchive } from "./open";
export type { LayerFactory, LayerSpec } from "./open";
export { seekFile } from "./file";
export { flushPrefetch, prefetchWanted } from "./prefetch";
export { relOf, splitPath } from "./paths";
export type {
  Layer,
  LayerFile,
  LayerStatFs,
  RawEntry,
  Scratch,
  Stat,
  WritableFile,
  WritableLayer,
} from "./types";
