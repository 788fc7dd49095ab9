/**
 * Reading a docker-archive layout (`docker save`, `podman save`): `manifest.json` lists each image's
 * config file, its `RepoTags` and its layer tars, bottom first.
 *
 * Invariants: every path comes from `manifest.json` and is opened through `fileInside` (inside the
 * layout, a regular file); the image ID is the digest of the config bytes; a layer's only check here is
 * its diff ID (the archive gives no other digest), which registration verifies.
 */
import * as fs from "node:fs";
import { UsageError } from "../../errors";
import { fileInside, imageOf, parseJson, type ImageToLoad } from "./source";

interface ManifestEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

function strings(v: unknown, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw new UsageError(`${what} must be a list of strings`);
  }
  return v as string[];
}

/** The images of the docker-archive layout at `root` (a real directory path). */
export function readDockerArchive(root: string): ImageToLoad[] {
  const manifest = parseJson(fs.readFileSync(fileInside(root, "manifest.json", "file")), "manifest.json");
  if (!Array.isArray(manifest) || manifest.length === 0) {
    throw new UsageError("manifest.json lists no images");
  }
  return (manifest as ManifestEntry[]).map((entry, i) => {
    const what = `image ${i + 1} of manifest.json`;
    if (typeof entry?.Config !== "string") throw new UsageError(`${what} has no Config`);
    const names = strings(entry.RepoTags, `RepoTags of ${what}`);
    const label = names[0] ?? what;
    const config = fs.readFileSync(fileInside(root, entry.Config, "config"));
    const files = strings(entry.Layers, `Layers of ${what}`).map((l) => ({
      file: fileInside(root, l, "layer"),
    }));
    return imageOf(config, files, names, label);
  });
}
