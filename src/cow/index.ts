/**
 * Copy-on-write: copy-up into the writable layer through the work dir. `CopyUp.copyUp` is the one entry
 * point (copyup.ts); the union tells it where things are through a `UnionView` (view.ts).
 */
export { CopyUp, type CopyUpHow, type CopyUpSettings } from "./copyup";
export type { Found, InoOf, UnionView } from "./view";
export { Origins, originXattr } from "./origin";
export { WorkDir } from "./workdir";
export { BackgroundCopier, type CopyProgress } from "./background";
