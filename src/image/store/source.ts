/**
 * Image archives as `load` reads them: an OCI image layout (a directory, or a tar of one: what `podman
 * save --format oci-archive` writes) or a docker-archive (`docker save`, `podman save`), from a
 * directory, a file or a stream.
 *
 * Invariants:
 * - An archive (file or stream, plain or gzip) is unpacked into a fresh directory first, with node-tar's
 *   path protections on (no absolute names, no `..`); a layout directory is read where it is.
 * - Every file a manifest names is opened only if its real path lies inside the layout directory and it
 *   is a regular file; anything else is a UsageError naming the entry.
 * - Which format it is comes from the files present: `manifest.json` (docker-archive, which names its
 *   images with `RepoTags`) is preferred, then `index.json` + `oci-layout`. An archive with neither is
 *   refused with one line (a layer tarball is pointed to `import`).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract } from "tar";
import { codeOf, UsageError } from "../../errors";
import { checkDigest, sha256, type Digest } from "./digest";
import type { LayerBlob } from "./layers";

/** One image of an archive, ready to be registered. */
export interface ImageToLoad {
  /** Names as the archive gives them (possibly none). */
  names: string[];
  /** The image config, byte for byte; the image ID is its digest. */
  config: Buffer;
  id: Digest;
  /** Bottom layer first, each with the diff ID the config gives it. */
  layers: LayerBlob[];
}

/** The path of a regular file `rel` inside `root` (a real directory path), or a UsageError. */
export function fileInside(root: string, rel: string, what: string): string {
  let real: string;
  try {
    real = fs.realpathSync(nodePath.join(root, rel));
  } catch {
    throw new UsageError(`${what} '${rel}' is missing from the archive`);
  }
  if (!real.startsWith(`${root}/`)) throw new UsageError(`${what} '${rel}' points outside the archive`);
  if (!fs.statSync(real).isFile()) throw new UsageError(`${what} '${rel}' is not a file`);
  return real;
}

/** Parses JSON text, or a UsageError naming `what`. */
export function parseJson(text: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(text.toString()) as unknown;
  } catch (err) {
    throw new UsageError(`${what} is not valid JSON (${(err as Error).message})`);
  }
}

/** The diff IDs an image config lists (`rootfs.diff_ids`), checked. */
export function diffIdsOf(config: unknown, what: string): Digest[] {
  const rootfs = (config as { rootfs?: { diff_ids?: unknown } } | null)?.rootfs;
  const ids = rootfs?.diff_ids;
  if (!Array.isArray(ids)) throw new UsageError(`${what} has no rootfs.diff_ids`);
  return ids.map((d, i) => checkDigest(d, `${what}, rootfs.diff_ids[${i}]`));
}

/** The image whose config is `config` with layer files `files` (bottom first). */
export function imageOf(
  config: Buffer,
  files: Array<{ file: string; digest?: Digest }>,
  names: string[],
  what: string,
): ImageToLoad {
  const diffIds = diffIdsOf(parseJson(config, `the config of ${what}`), `the config of ${what}`);
  if (diffIds.length !== files.length) {
    throw new UsageError(
      `${what} has ${files.length} layers but its config lists ${diffIds.length} diff IDs`,
    );
  }
  const layers = files.map((f, i): LayerBlob => {
    const blob: LayerBlob = { file: f.file, diffId: diffIds[i] as Digest, what: `layer ${i + 1} of ${what}` };
    if (f.digest !== undefined) blob.digest = f.digest;
    return blob;
  });
  return { names, config, id: sha256(config), layers };
}

/** Unpacks an archive (a file, or a stream such as stdin) into the empty directory `dest`. */
export async function unpackArchive(input: string | Readable, dest: string, label: string): Promise<void> {
  const problems: string[] = [];
  const onwarn = (code: string, message: string): void => {
    if (code !== "TAR_ENTRY_INFO") problems.push(message);
  };
  const filter = (_p: string, e: unknown): boolean => {
    const type = (e as { type?: string }).type;
    return ["File", "OldFile", "Directory", "SymbolicLink", "Link"].includes(type ?? "");
  };
  try {
    if (typeof input === "string") await extract({ file: input, cwd: dest, onwarn, filter, strict: false });
    else await pipeline(input, extract({ cwd: dest, onwarn, filter }));
  } catch (err) {
    if (codeOf(err) === "ENOENT") throw new UsageError(`${label} does not exist`);
    if (codeOf(err) === "EISDIR") throw new UsageError(`${label} is a directory`);
    if ((err as { code?: unknown }).code === "TAR_BAD_ARCHIVE")
      throw new UsageError(`${label} is not a tar archive`);
    throw new UsageError(`cannot read ${label}: ${(err as Error).message}`);
  }
  if (problems.length > 0 && fs.readdirSync(dest).length === 0) {
    throw new UsageError(`${label} is not a tar archive (${problems[0]})`);
  }
  if (problems.length > 0) throw new UsageError(`${label} is a damaged archive (${problems[0]})`);
}

export type ArchiveFormat = "docker-archive" | "oci";

/** Which format the layout directory `root` holds. */
export function formatOf(root: string, label: string): ArchiveFormat {
  const has = (f: string): boolean => fs.existsSync(nodePath.join(root, f));
  if (has("manifest.json")) return "docker-archive";
  if (has("index.json") && has("oci-layout")) return "oci";
  const hint =
    fs.readdirSync(root).length === 0 ? "it is empty" : "no manifest.json, index.json or oci-layout";
  throw new UsageError(
    `${label} is not an image archive (${hint}); a single layer tarball goes in with 'unionfs-ts import'`,
  );
}
