/** Copy-on-write: copy-up into the writable layer through the work dir. */
export { copyUp } from "./copyup";
export { Origins, originXattr } from "./origin";
export type { CopyUpOptions } from "./copyup";
export { WorkDir } from "./workdir";
export { BackgroundCopier } from "./background";
