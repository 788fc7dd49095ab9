/**
 * The image database: configs by image ID (`imagedb/content/sha256/<ID>`, the bytes the ID is the
 * digest of) and names (`repositories.json`, Docker's format: `{"Repositories": {repo: {name: id}}}`).
 *
 * Invariants: an image exists when its config file does; its layers are the chain IDs of its config's
 * `rootfs.diff_ids`, every one of which the layer database holds while the image exists. A name points
 * at one image; giving it to another image moves it. Names are written only through a rename.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { UsageError } from "../../errors";
import { chainIds, hexOf, sha256, type Digest } from "./digest";
import { hexEntries, readText, writeFileAtomic, type StorePaths } from "./layout";
import { nameCandidates, splitName } from "./names";
import { diffIdsOf, parseJson } from "./source";

/** The parts of an image config the store reads (the rest is kept as it is). */
export interface ImageConfig {
  created?: string;
  architecture?: string;
  os?: string;
  config?: Record<string, unknown>;
  rootfs: { type: string; diff_ids: Digest[] };
  history?: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

export interface ImageRecord {
  id: Digest;
  names: string[];
  config: ImageConfig;
  /** Chain IDs of its layers, bottom first. */
  chains: Digest[];
  /** The image it was committed on, if any. */
  parent: Digest | undefined;
}

/** All names, name → image ID. */
export function readNames(paths: StorePaths): Map<string, Digest> {
  const out = new Map<string, Digest>();
  if (!fs.existsSync(paths.repositories)) return out;
  const doc = parseJson(fs.readFileSync(paths.repositories), paths.repositories) as {
    Repositories?: Record<string, Record<string, Digest>>;
  };
  for (const tags of Object.values(doc.Repositories ?? {})) {
    for (const [name, id] of Object.entries(tags)) out.set(name, id);
  }
  return out;
}

export function writeNames(paths: StorePaths, names: Map<string, Digest>): void {
  const repos: Record<string, Record<string, Digest>> = {};
  for (const [name, id] of [...names].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const { repo } = splitName(name);
    (repos[repo] ??= {})[name] = id;
  }
  writeFileAtomic(paths.repositories, `${JSON.stringify({ Repositories: repos })}\n`);
}

export function parseConfig(bytes: Buffer, what: string): ImageConfig {
  const config = parseJson(bytes, what) as ImageConfig;
  diffIdsOf(config, what);
  return config;
}

/** The image with ID `id`, or undefined. */
export function readImage(
  paths: StorePaths,
  id: Digest,
  names?: Map<string, Digest>,
): ImageRecord | undefined {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(paths.imageConfig(id));
  } catch {
    return undefined;
  }
  const config = parseConfig(bytes, `the config of image ${id}`);
  const all = names ?? readNames(paths);
  const parent = readText(nodePath.join(paths.imageMeta(id), "parent"));
  return {
    id,
    names: [...all].filter(([, v]) => v === id).map(([k]) => k),
    config,
    chains: chainIds(config.rootfs.diff_ids),
    parent: parent as Digest | undefined,
  };
}

/** Every image in the store, newest first. */
export function listImages(paths: StorePaths): ImageRecord[] {
  const names = readNames(paths);
  return hexEntries(paths.imageContentRoot)
    .map((f) => readImage(paths, `sha256:${f}`, names))
    .filter((i): i is ImageRecord => i !== undefined)
    .sort((a, b) => String(b.config.created ?? "").localeCompare(String(a.config.created ?? "")));
}

/**
 * The image `typed` means: a name (as typed, with `:latest`, under `localhost/`), a full ID
 * (`sha256:…` or its hex) or a unique prefix of at least 4 hex digits. A UsageError otherwise.
 */
export function findImage(paths: StorePaths, typed: string): ImageRecord {
  const names = readNames(paths);
  for (const candidate of nameCandidates(typed)) {
    const id = names.get(candidate);
    if (id !== undefined) {
      const image = readImage(paths, id, names);
      if (image === undefined) throw new UsageError(`image '${candidate}' names ${id}, which is missing`);
      return image;
    }
  }
  const hex = typed.startsWith("sha256:") ? typed.slice(7) : typed;
  if (/^[0-9a-f]{4,64}$/.test(hex)) {
    const hits = listImages(paths).filter((i) => hexOf(i.id).startsWith(hex));
    if (hits.length === 1) return hits[0] as ImageRecord;
    if (hits.length > 1)
      throw new UsageError(`'${typed}' is the start of ${hits.length} image IDs; give more digits`);
  }
  throw new UsageError(`no image '${typed}' in the store (see: unionfs-ts images)`);
}

/** Stores a config (its layers must be registered already) and gives it `names`; returns the image ID. */
export function addImage(paths: StorePaths, config: Buffer, names: string[], parent?: Digest): Digest {
  const id = sha256(config);
  if (parent !== undefined) writeFileAtomic(nodePath.join(paths.imageMeta(id), "parent"), parent);
  if (!fs.existsSync(paths.imageConfig(id))) writeFileAtomic(paths.imageConfig(id), config);
  if (names.length > 0) {
    const all = readNames(paths);
    for (const n of names) all.set(n, id);
    writeNames(paths, all);
  }
  return id;
}

/** Removes an image's names and config (its layers are the caller's business). */
export function deleteImage(paths: StorePaths, id: Digest): void {
  const names = readNames(paths);
  const kept = new Map([...names].filter(([, v]) => v !== id));
  if (kept.size !== names.size) writeNames(paths, kept);
  fs.rmSync(paths.imageConfig(id), { force: true });
  fs.rmSync(paths.imageMeta(id), { recursive: true, force: true });
}

/** Removes one name; returns the image it named. */
export function untag(paths: StorePaths, name: string): Digest | undefined {
  const names = readNames(paths);
  const id = names.get(name);
  if (id === undefined) return undefined;
  names.delete(name);
  writeNames(paths, names);
  return id;
}
