/** Layers: one directory tree of the union each. See layer.ts for the interface and its invariants. */
export { DirLayer } from "./layer";
export type { Layer, RawEntry } from "./layer";
