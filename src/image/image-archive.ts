/**
 * Telling a whole image archive from a layer, so `import` refuses what `load` reads: an OCI image layout
 * (`oci-layout`, `index.json`, `blobs/sha256/…`; `podman save --format oci-archive`, `docker save` since
 * Docker 25) or a docker-archive (`manifest.json`, `repositories`, `<id>/layer.tar` or `<id>.tar`;
 * `docker save`, `podman save`), as a tar stream or as a directory.
 *
 * Invariant: an archive counts as an image only when everything at its top level so far is an image
 * archive's own name (so a layer that happens to hold `/manifest.json` or `/oci-layout` is a layer) and
 * one of its telling members has been seen; it is decided as early as the order of members allows.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";

const HEX64 = "[0-9a-f]{64}";
const ROOT_NAME = new RegExp(
  `^(${HEX64}(\\.json|\\.tar)?|blobs|index\\.json|oci-layout|manifest\\.json|repositories)$`,
);
const OCI_BLOB = new RegExp(`^blobs/sha256/${HEX64}$`);
const DOCKER_LAYER = new RegExp(`^${HEX64}(\\.tar|/layer\\.tar)$`);

const OCI = "an OCI image archive (oci-layout, index.json, blobs/)";
const DOCKER = "a docker-archive (manifest.json, one tar per layer)";

/** Watches the members of a tar stream; `see` returns what the archive is once it is evidently an image. */
export class ImageArchiveSniffer {
  private readonly roots = new Set<string>();
  private manifest = false;
  private repositories = false;

  /** `rel`: a member's normalised path ("a/b"); `isFile`: a regular file. */
  see(rel: string, isFile: boolean): string | undefined {
    const top = rel.split("/")[0] ?? "";
    if (top === "") return undefined;
    this.roots.add(top);
    if (![...this.roots].every((r) => ROOT_NAME.test(r))) return undefined;
    if (!isFile) return undefined;
    if (rel === "oci-layout" || OCI_BLOB.test(rel)) return OCI;
    if (rel === "manifest.json") this.manifest = true;
    if (rel === "repositories") this.repositories = true;
    if (DOCKER_LAYER.test(rel) || (this.manifest && this.repositories)) return DOCKER;
    return undefined;
  }
}

/** What the directory `dir` is when it holds an unpacked image (OCI layout, docker-archive), else undefined. */
export function imageDirectoryKind(dir: string): string | undefined {
  const has = (name: string): boolean => fs.existsSync(nodePath.join(dir, name));
  if (has("oci-layout")) return "an OCI image layout (oci-layout, index.json, blobs/)";
  if (has("manifest.json") && (has("repositories") || has("blobs"))) return "an unpacked docker-archive";
  return undefined;
}
