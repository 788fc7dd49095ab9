/**
 * Reading an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`), as `podman save --format
 * oci-archive` and `skopeo copy … oci:` write it, and as `save` writes it.
 *
 * Invariants: every blob is named by its digest and read only after its bytes were checked against it
 * (manifests, indexes and configs here; layers when registered); an index is followed down to the image
 * manifest for this machine's platform (linux and the CPU Node runs on); each image's names come from
 * its descriptor's `io.containerd.image.name` or `org.opencontainers.image.ref.name` annotation.
 */
import * as fs from "node:fs";
import { UsageError } from "../../errors";
import { checkDigest, hexOf, sha256, type Digest } from "./digest";
import { fileInside, imageOf, parseJson, type ImageToLoad } from "./source";

export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
} as const;

export const REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";

interface Descriptor {
  mediaType?: string;
  digest: Digest;
  size?: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string };
}

/** Node's CPU names → OCI's. */
const ARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  s390x: "s390x",
  ppc64: "ppc64le",
};

function descriptors(v: unknown, what: string): Descriptor[] {
  if (!Array.isArray(v)) throw new UsageError(`${what} is not a list`);
  return v.map((d: unknown, i): Descriptor => {
    const o = (d ?? {}) as Record<string, unknown>;
    return { ...(o as object), digest: checkDigest(o.digest, `${what}[${i}]`) } as Descriptor;
  });
}

/** A blob's bytes, checked against its digest. */
function readBlob(root: string, digest: Digest, what: string): Buffer {
  const data = fs.readFileSync(fileInside(root, `blobs/sha256/${hexOf(digest)}`, what));
  if (sha256(data) !== digest) throw new UsageError(`${what} ${digest} does not match its digest`);
  return data;
}

function isIndex(mediaType: string | undefined): boolean {
  return mediaType === MEDIA.index || mediaType === MEDIA.dockerList;
}

/** The manifest descriptor of an index for this platform. */
function pickPlatform(list: Descriptor[], what: string): Descriptor {
  const arch = ARCH[process.arch] ?? process.arch;
  const fits = list.filter(
    (d) => (d.platform?.os ?? "linux") === "linux" && (d.platform?.architecture ?? arch) === arch,
  );
  const chosen = fits[0];
  if (chosen === undefined) throw new UsageError(`${what} has no image for linux/${arch}`);
  return chosen;
}

function namesOf(d: Descriptor): string[] {
  const name = d.annotations?.[CONTAINERD_NAME] ?? d.annotations?.[REF_NAME];
  return name === undefined || name === "" ? [] : [name];
}

/** The image a manifest (or an index leading to one) describes. */
function readManifest(root: string, d: Descriptor, names: string[], what: string): ImageToLoad {
  const doc = parseJson(readBlob(root, d.digest, "manifest"), `manifest ${d.digest}`) as Record<
    string,
    unknown
  >;
  if (isIndex(d.mediaType) || Array.isArray(doc.manifests)) {
    const inner = pickPlatform(descriptors(doc.manifests, `index ${d.digest}`), `index ${d.digest}`);
    return readManifest(root, inner, names, what);
  }
  const configDesc = descriptors([doc.config], `config of manifest ${d.digest}`)[0] as Descriptor;
  const config = readBlob(root, configDesc.digest, "config");
  const files = descriptors(doc.layers ?? [], `layers of manifest ${d.digest}`).map((l) => ({
    file: fileInside(root, `blobs/sha256/${hexOf(l.digest)}`, "layer blob"),
    digest: l.digest,
  }));
  return imageOf(config, files, names, names[0] ?? what);
}

/** The images of the OCI layout at `root` (a real directory path), one per entry of `index.json`. */
export function readOciLayout(root: string): ImageToLoad[] {
  const layout = parseJson(fs.readFileSync(fileInside(root, "oci-layout", "file")), "oci-layout") as {
    imageLayoutVersion?: unknown;
  };
  if (typeof layout?.imageLayoutVersion !== "string")
    throw new UsageError("oci-layout has no imageLayoutVersion");
  const index = parseJson(fs.readFileSync(fileInside(root, "index.json", "file")), "index.json") as {
    manifests?: unknown;
  };
  const list = descriptors(index?.manifests ?? [], "index.json manifests");
  if (list.length === 0) throw new UsageError("index.json lists no images");
  return list.map((d, i) => readManifest(root, d, namesOf(d), `image ${i + 1} of index.json`));
}
