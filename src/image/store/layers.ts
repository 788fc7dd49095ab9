/**
 * The layer database: each image layer unpacked once, under its chain ID, shared by every image (and
 * container) whose stack contains it.
 *
 * Invariants:
 * - A layer exists when `layerdb/sha256/<CHAIN>/` exists (it is published last, by a rename); it names
 *   its directory `overlay2/<cache-id>/`, which holds `diff/` (overlay-format whiteouts), `link` and,
 *   above a base layer, `lower` (Docker's overlay2 layout, so `mount-overlay2` mounts it).
 * - Registering a blob checks its digest (when the manifest gives one) and its diff ID (sha256 of the
 *   uncompressed tar) before anything is published; a mismatch is a UsageError and leaves no trace.
 *   A chain ID the store already has is not unpacked again.
 * - The blob is read once: hashed, recorded as a tar-split and unpacked by `importLayerStream` (path
 *   protections on) together (unpack.ts). Nothing here follows a symlink inside a layer.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { UsageError } from "../../errors";
import { checkDigest, sha256, type Digest } from "./digest";
import { publishDir, randomId, readText, shortName, tempDir, type StorePaths } from "./layout";
import { unpackBlob, type LayerBlob, type UnpackOptions } from "./unpack";

export type { LayerBlob } from "./unpack";

export interface LayerRecord {
  chain: Digest;
  diffId: Digest;
  cacheId: string;
  /** The chain ID of the layer below; undefined for a base layer. */
  parent: Digest | undefined;
  /** Bytes of file data in the layer's tar. */
  size: number;
}

export const TAR_SPLIT = "tar-split.json.gz";

export function chainOf(parent: Digest | undefined, diffId: Digest): Digest {
  return parent === undefined ? diffId : sha256(`${parent} ${diffId}`);
}

/** The layer with chain ID `chain`, or undefined when the store has none. */
export function readLayer(paths: StorePaths, chain: Digest): LayerRecord | undefined {
  const dir = paths.layerDb(chain);
  const cacheId = readText(nodePath.join(dir, "cache-id"));
  if (cacheId === undefined) return undefined;
  const parent = readText(nodePath.join(dir, "parent"));
  return {
    chain,
    diffId: checkDigest(readText(nodePath.join(dir, "diff")), `${dir}/diff`),
    cacheId,
    parent: parent === undefined ? undefined : checkDigest(parent, `${dir}/parent`),
    size: Number(readText(nodePath.join(dir, "size")) ?? "0"),
  };
}

/** The layer's record; a UsageError when the store lost it (an image pointing at nothing). */
export function requireLayer(paths: StorePaths, chain: Digest): LayerRecord {
  const layer = readLayer(paths, chain);
  if (layer === undefined) throw new UsageError(`the store has no layer ${chain} (damaged store?)`);
  return layer;
}

/** `overlay2/<cache-id>/diff` of a layer. */
export function diffDir(paths: StorePaths, layer: LayerRecord): string {
  return nodePath.join(paths.layerDir(layer.cacheId), "diff");
}

/** The `l/SHORT` names of a layer and of every layer below it, top first (its `lower` file plus itself). */
export function lowerChain(paths: StorePaths, cacheId: string): string[] {
  const dir = paths.layerDir(cacheId);
  const link = readText(nodePath.join(dir, "link"));
  if (link === undefined) throw new UsageError(`layer directory ${dir} has no link file (damaged store?)`);
  const lower = readText(nodePath.join(dir, "lower"));
  return [`l/${link}`, ...(lower === undefined || lower === "" ? [] : lower.split(":"))];
}

/**
 * Makes `overlay2/<ID>/` for a new layer from a directory holding its `diff/`: writes `link`, `lower`
 * (the chain of `below`, a cache ID, when given) and the `l/` symlink, then renames it into place.
 */
export function publishLayerDir(
  paths: StorePaths,
  staged: string,
  below: string | undefined,
  id: string,
): void {
  const short = shortName();
  fs.writeFileSync(nodePath.join(staged, "link"), short);
  if (below !== undefined)
    fs.writeFileSync(nodePath.join(staged, "lower"), lowerChain(paths, below).join(":"));
  publishDir(staged, paths.layerDir(id));
  fs.mkdirSync(paths.links, { recursive: true, mode: 0o700 });
  fs.symlinkSync(`../${id}/diff`, nodePath.join(paths.links, short));
}

export type RegisterOptions = UnpackOptions;

/**
 * Registers a layer blob on top of the layer `parent` (a chain ID the store has, or undefined for a
 * base layer). Returns its record and whether it was unpacked now (false: the store had it).
 */
export async function registerLayer(
  paths: StorePaths,
  blob: LayerBlob,
  parent: Digest | undefined,
  opts: RegisterOptions = {},
): Promise<{ layer: LayerRecord; created: boolean }> {
  const chain = chainOf(parent, blob.diffId);
  const existing = readLayer(paths, chain);
  if (existing !== undefined) return { layer: existing, created: false };
  const below = parent === undefined ? undefined : requireLayer(paths, parent);
  const staging = tempDir(paths, "layer");
  try {
    const meta = nodePath.join(staging, "db");
    const cache = nodePath.join(staging, "cache");
    fs.mkdirSync(meta);
    fs.mkdirSync(cache, { mode: 0o700 });
    const { size } = await unpackBlob(
      blob,
      nodePath.join(cache, "diff"),
      nodePath.join(meta, TAR_SPLIT),
      opts,
    );
    const layer: LayerRecord = { chain, diffId: blob.diffId, cacheId: randomId(), parent, size };
    publishLayerDir(paths, cache, below?.cacheId, layer.cacheId);
    writeLayerMeta(meta, layer);
    publishDir(meta, paths.layerDb(chain));
    return { layer, created: true };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** The small files of `layerdb/sha256/<chain>/`, written into `dir` (which holds the tar-split already). */
function writeLayerMeta(dir: string, layer: LayerRecord): void {
  fs.writeFileSync(nodePath.join(dir, "diff"), layer.diffId);
  fs.writeFileSync(nodePath.join(dir, "cache-id"), layer.cacheId);
  fs.writeFileSync(nodePath.join(dir, "size"), String(layer.size));
  if (layer.parent !== undefined) fs.writeFileSync(nodePath.join(dir, "parent"), layer.parent);
}

/**
 * Removes a layer: its layerdb entry first (from then on it does not exist), then its `l/` link and its
 * directory. The caller checks that nothing uses it.
 */
export function removeLayer(paths: StorePaths, chain: Digest): void {
  const layer = readLayer(paths, chain);
  if (layer === undefined) return;
  const trash = tempDir(paths, "rm");
  fs.renameSync(paths.layerDb(chain), nodePath.join(trash, "db"));
  removeLayerDir(paths, layer.cacheId, trash);
  fs.rmSync(trash, { recursive: true, force: true });
}

/** Removes `overlay2/<id>` and its `l/` link (moved into `trash` first, so a crash leaves no half layer). */
export function removeLayerDir(paths: StorePaths, id: string, trash: string): void {
  const dir = paths.layerDir(id);
  const link = readText(nodePath.join(dir, "link"));
  if (link !== undefined) fs.rmSync(nodePath.join(paths.links, link), { force: true });
  if (fs.existsSync(dir)) fs.renameSync(dir, nodePath.join(trash, id));
}
