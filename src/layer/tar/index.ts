/**
 * Tar layers: read-only layers served from tar archives without unpacking them (layer.ts), on an index
 * of the archive (archive.ts, scan.ts, tree.ts, gzip.ts) that is saved for the next mount (store.ts,
 * open.ts).
 */
export { isTarArchive } from "./archive";
export { ArchiveError } from "./header";
export { TarLayer, TAR_DEV, type TarLayerOptions } from "./layer";
export { indexLocations, INDEX_SUFFIX } from "./open";
