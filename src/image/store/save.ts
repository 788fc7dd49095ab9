/**
 * `save`: an image of the store as an oci-archive (a tar of an OCI image layout: `oci-layout`,
 * `index.json`, `blobs/sha256/…`), which `podman load` and `skopeo copy oci-archive:` read.
 *
 * Invariants:
 * - Each layer's tar is rebuilt byte for byte from its tar-split and unpacked files, and checked against
 *   its diff ID, so the config (and the image ID) stays as stored. Where that fails (a layer unpacked
 *   from an archive with duplicate names, a damaged store), the layer is exported from its files instead
 *   and the config gets that tar's diff ID, with a warning: the image then gets a new ID.
 * - Layers are gzip-compressed; every blob is named by the sha256 of its bytes and described with its
 *   size; the index names the manifest with `org.opencontainers.image.ref.name`.
 * - Everything is built in the store's tmp/ and removed afterwards; the output file is written only once
 *   all blobs exist, and removed again if writing it fails.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { create } from "tar";
import { exportLayer } from "../export";
import type { Progress } from "../progress";
import { HashSink, hashing, hexOf, sha256, type Digest } from "./digest";
import type { ImageConfig, ImageRecord } from "./images";
import { tempDir, type StorePaths } from "./layout";
import { diffDir, requireLayer, TAR_SPLIT } from "./layers";
import { MEDIA, REF_NAME } from "./oci-layout";
import { rebuildTar, TarSplitMismatch } from "./tarsplit";

export interface SaveOptions {
  onWarning?: (message: string) => void;
  /** Told of every byte of the layers' tars (their file data as the total) and of their entries. */
  progress?: Progress;
}

interface Blob {
  digest: Digest;
  size: number;
}

/** Compresses `tar` into `blobs/sha256/<digest>`; returns the blob and the uncompressed tar's digest. */
async function writeLayerBlob(
  tar: Readable,
  blobs: string,
  progress?: Progress,
): Promise<{ blob: Blob; diffId: Digest }> {
  const partial = nodePath.join(blobs, "partial");
  const plain = new HashSink();
  const packed = new HashSink();
  const gzip = createGzip();
  const file = fs.createWriteStream(partial, { mode: 0o644 });
  await pipeline(
    tar,
    hashing(plain, (n) => progress?.add(n)),
    gzip,
    hashing(packed),
    file,
  );
  const digest = packed.digest();
  fs.renameSync(partial, nodePath.join(blobs, hexOf(digest)));
  return { blob: { digest, size: packed.bytes }, diffId: plain.digest() };
}

/** The layer's tar from its tar-split, if that reproduces `diffId`; undefined (with the reason) otherwise. */
async function rebuiltBlob(
  split: string,
  diff: string,
  diffId: Digest,
  blobs: string,
  progress?: Progress,
): Promise<{ blob?: Blob; why?: string }> {
  if (!fs.existsSync(split)) return { why: "it has no tar-split" };
  try {
    const { blob, diffId: got } = await writeLayerBlob(
      Readable.from(rebuildTar(split, diff)),
      blobs,
      progress,
    );
    if (got === diffId) return { blob };
    fs.rmSync(nodePath.join(blobs, hexOf(blob.digest)), { force: true });
    return { why: "its files no longer give the tar it was loaded from" };
  } catch (err) {
    if (err instanceof TarSplitMismatch) return { why: err.message };
    throw err;
  }
}

/** Writes every layer blob; returns them and the diff IDs the saved config must list. */
async function layerBlobs(
  paths: StorePaths,
  image: ImageRecord,
  blobs: string,
  opts: SaveOptions,
): Promise<{ layers: Blob[]; diffIds: Digest[] }> {
  const layers: Blob[] = [];
  const diffIds: Digest[] = [];
  const all = image.chains.map((c) => requireLayer(paths, c));
  if (opts.progress !== undefined) {
    opts.progress.total = all.reduce((sum, l) => sum + l.size, 0);
    opts.progress.unit = ["layer", "layers"]; // the blobs are streamed whole: their entries go uncounted
  }
  for (const [i, layer] of all.entries()) {
    const chain = layer.chain;
    const diff = diffDir(paths, layer);
    const rebuilt = await rebuiltBlob(
      nodePath.join(paths.layerDb(chain), TAR_SPLIT),
      diff,
      layer.diffId,
      blobs,
      opts.progress,
    );
    if (rebuilt.blob !== undefined) {
      layers.push(rebuilt.blob);
      diffIds.push(layer.diffId);
      opts.progress?.add(0, 1);
      continue;
    }
    opts.onWarning?.(
      `layer ${i + 1} cannot be rebuilt as loaded (${rebuilt.why}): exporting it from its files`,
    );
    const tar = tempDir(paths, "export");
    try {
      const file = nodePath.join(tar, "layer.tar");
      await exportLayer(diff, fs.createWriteStream(file), { onWarning: opts.onWarning });
      const { blob, diffId } = await writeLayerBlob(fs.createReadStream(file), blobs, opts.progress);
      layers.push(blob);
      diffIds.push(diffId);
      opts.progress?.add(0, 1);
    } finally {
      fs.rmSync(tar, { recursive: true, force: true });
    }
  }
  return { layers, diffIds };
}

/** Writes a JSON blob; returns its descriptor fields. */
function jsonBlob(blobs: string, data: Buffer): Blob {
  const digest = sha256(data);
  fs.writeFileSync(nodePath.join(blobs, hexOf(digest)), data, { mode: 0o644 });
  return { digest, size: data.length };
}

/** Builds the OCI layout of `image` in `dir`; returns the (possibly new) image ID. */
export async function buildLayout(
  paths: StorePaths,
  image: ImageRecord,
  name: string | undefined,
  dir: string,
  opts: SaveOptions = {},
): Promise<Digest> {
  const blobs = nodePath.join(dir, "blobs", "sha256");
  fs.mkdirSync(blobs, { recursive: true });
  const { layers, diffIds } = await layerBlobs(paths, image, blobs, opts);
  const same = diffIds.every((d, i) => d === image.config.rootfs.diff_ids[i]);
  const configBytes = same
    ? fs.readFileSync(paths.imageConfig(image.id))
    : Buffer.from(
        JSON.stringify({ ...image.config, rootfs: { type: "layers", diff_ids: diffIds } } as ImageConfig),
      );
  const config = jsonBlob(blobs, configBytes);
  const manifest = jsonBlob(
    blobs,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.manifest,
        config: { mediaType: MEDIA.config, ...config },
        layers: layers.map((l) => ({ mediaType: MEDIA.layerGzip, ...l })),
      }),
    ),
  );
  const descriptor = {
    mediaType: MEDIA.manifest,
    ...manifest,
    ...(name === undefined ? {} : { annotations: { [REF_NAME]: name } }),
  };
  const index = { schemaVersion: 2, mediaType: MEDIA.index, manifests: [descriptor] };
  fs.writeFileSync(nodePath.join(dir, "index.json"), JSON.stringify(index));
  fs.writeFileSync(nodePath.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  return config.digest;
}

/**
 * Saves `image` (named `name` in the archive) as an oci-archive to the file `output`, or to the stream
 * `out`. Returns the image ID in the archive (the stored one unless a layer had to be exported anew).
 */
export async function saveImage(
  paths: StorePaths,
  image: ImageRecord,
  name: string | undefined,
  output: { file: string } | { stream: Writable },
  opts: SaveOptions = {},
): Promise<Digest> {
  const dir = tempDir(paths, "save");
  try {
    const id = await buildLayout(paths, image, name, dir, opts);
    const entries = ["oci-layout", "index.json", "blobs"];
    const tarOpts = { cwd: dir, portable: true, noMtime: true };
    if ("file" in output) {
      try {
        await create({ ...tarOpts, file: output.file }, entries);
      } catch (err) {
        fs.rmSync(output.file, { force: true });
        throw err;
      }
    } else await pipeline(create(tarOpts, entries) as unknown as Readable, output.stream, { end: false });
    return id;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
