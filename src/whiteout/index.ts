/**
 * Whiteouts and opaque markers: how a layer says "this name is deleted" or "hide everything below".
 * Every format (aufs.ts, overlay.ts; format.ts says what a format is) is read in every layer; new ones
 * are written in the format a mount chose (registry.ts).
 */
export {
  clearWhiteouts,
  discard,
  hidesName,
  isOpaque,
  isReservedName,
  isWhiteoutEntry,
  isWhiteoutFormat,
  markersOf,
  whiteoutsIn,
  whiteoutWriter,
  WHITEOUT_FORMATS,
} from "./registry";
export type { WhiteoutFormat, WhiteoutWriter } from "./registry";
export { OPAQUE_MARKER, WH_PREFIX, WORKDIR_NAME } from "./aufs";
