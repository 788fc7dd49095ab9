/**
 * Layer tooling, transport-neutral (no FUSE): reading a layer directory as changes (`diff`), writing it
 * as an OCI layer tarball (`export`), unpacking one into a branch (`import`), resolving Docker's
 * overlay2 layout into a branch list, and a progress line for long work.
 */
export { walkLayer, showPath, type LayerItem, type LayerWalk } from "./walk";
export { diffLayer, formatChanges, type Change, type ChangeKind } from "./diff";
export { exportLayer, checkOutsideLayer, type ExportOptions, type ExportSummary } from "./export";
export {
  importLayer,
  importLayerStream,
  type ImportFormat,
  type ImportOptions,
  type ImportSummary,
} from "./import";
export { Progress, formatBytes, formatDuration, type ProgressOptions, type ProgressStream } from "./progress";
export { resolveOverlay2, overlay2MountArgs, readLowerFile, type Overlay2Mount } from "./overlay2";
