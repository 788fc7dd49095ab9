/** Copy-on-write: copy-up into the writable layer through the work dir. */
export { copyObject, copyTimes, copyUp, readOrigin, writeOrigin, ORIGIN_XATTR } from "./copyup";
export type { CopyUpOptions } from "./copyup";
export { WorkDir } from "./workdir";
export { BackgroundCopier } from "./background";
