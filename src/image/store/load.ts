/**
 * `load`: every image of an image archive or layout into the store.
 *
 * Invariants: the archive is unpacked into the store's tmp/ (removed afterwards, also on failure); each
 * layer is verified and unpacked at most once (a chain ID the store has is skipped); an image is
 * recorded only after all its layers are, and its names only after its config. A failure leaves the
 * store as it was but for layers that were complete (shared, usable by a later load).
 */
import * as fs from "node:fs";
import type { Readable } from "node:stream";
import { UsageError } from "../../errors";
import type { Digest } from "./digest";
import { readDockerArchive } from "./docker-archive";
import { addImage } from "./images";
import { tempDir, type StorePaths } from "./layout";
import type { Progress } from "../progress";
import { chainOf, readLayer, registerLayer, type LayerBlob } from "./layers";
import { normalizeName } from "./names";
import { readOciLayout } from "./oci-layout";
import { formatOf, unpackArchive, type ImageToLoad } from "./source";

export interface LoadedImage {
  id: Digest;
  names: string[];
  /** Layers unpacked now, and layers the store had already. */
  unpacked: number;
  shared: number;
}

export interface LoadOptions {
  onWarning?: (message: string) => void;
  /** Told of every compressed byte of the layers it unpacks (their total first) and of their entries. */
  progress?: Progress;
}

/** What `input` is: a layout directory, an archive file, or a stream (stdin). */
export type LoadInput = { dir: string } | { file: string } | { stream: Readable; label: string };

async function layoutOf(paths: StorePaths, input: LoadInput): Promise<{ root: string; cleanup?: string }> {
  if ("dir" in input) return { root: fs.realpathSync(input.dir) };
  const dest = tempDir(paths, "load");
  try {
    if ("file" in input) await unpackArchive(input.file, dest, `'${input.file}'`);
    else await unpackArchive(input.stream, dest, input.label);
  } catch (err) {
    fs.rmSync(dest, { recursive: true, force: true });
    throw err;
  }
  return { root: fs.realpathSync(dest), cleanup: dest };
}

function readImages(root: string, label: string): ImageToLoad[] {
  return formatOf(root, label) === "oci" ? readOciLayout(root) : readDockerArchive(root);
}

/** Bytes of the layer blobs the store does not have yet (each counted once). */
function bytesToUnpack(paths: StorePaths, images: ImageToLoad[]): number {
  const todo = new Map<Digest, LayerBlob>();
  for (const image of images) {
    let parent: Digest | undefined;
    for (const blob of image.layers) {
      parent = chainOf(parent, blob.diffId);
      if (readLayer(paths, parent) === undefined) todo.set(parent, blob);
    }
  }
  return [...todo.values()].reduce((sum, b) => sum + fs.statSync(b.file).size, 0);
}

/** Registers one image's layers, bottom first, then the image. */
async function loadImage(paths: StorePaths, image: ImageToLoad, opts: LoadOptions): Promise<LoadedImage> {
  const names = image.names.map((n) => normalizeName(n, "image name in the archive"));
  let parent: Digest | undefined;
  let unpacked = 0;
  for (const blob of image.layers) {
    const { layer, created } = await registerLayer(paths, blob, parent, opts);
    if (created) unpacked += 1;
    parent = layer.chain;
  }
  const id = addImage(paths, image.config, names);
  return { id, names, unpacked, shared: image.layers.length - unpacked };
}

/** Loads every image `input` holds; the caller holds the store's exclusive lock. */
export async function loadImages(
  paths: StorePaths,
  input: LoadInput,
  opts: LoadOptions = {},
): Promise<LoadedImage[]> {
  const label = "dir" in input ? `'${input.dir}'` : "file" in input ? `'${input.file}'` : input.label;
  if ("dir" in input && !fs.statSync(input.dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`${label} is not a directory`);
  }
  const { root, cleanup } = await layoutOf(paths, input);
  try {
    const images = readImages(root, label);
    if (opts.progress !== undefined) opts.progress.total = bytesToUnpack(paths, images);
    const loaded: LoadedImage[] = [];
    for (const image of images) loaded.push(await loadImage(paths, image, opts));
    return loaded;
  } finally {
    if (cleanup !== undefined) fs.rmSync(cleanup, { recursive: true, force: true });
  }
}
