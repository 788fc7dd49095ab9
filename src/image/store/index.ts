/**
 * The image store: images loaded from archives (`load`), their layers unpacked once and shared,
 * containers stacked on them (`run --image`), committed (`commit`) and saved as OCI archives (`save`).
 * Layout and invariants: layout.ts; the object the CLI and the library use: store.ts.
 */
export {
  ImageStore,
  shortId,
  type ContainerInfo,
  type ContainerMount,
  type ImageInfo,
  type StoreOptions,
} from "./store";
export { DEFAULT_STORE, STORE_ENV, StorePaths, storeDir } from "./layout";
export type { ContainerRecord } from "./containers";
export type { Digest } from "./digest";
export { chainIds, sha256 } from "./digest";
export type { ImageConfig, ImageRecord } from "./images";
export type { LayerBlob, LayerRecord } from "./layers";
export type { LoadedImage, LoadOptions } from "./load";
export { normalizeName } from "./names";
export type { RemoveResult } from "./remove";
export type { CommitOptions } from "./commit";
export type { SaveOptions } from "./save";
export { rebuildTar, TarSplitRecorder } from "./tarsplit";
