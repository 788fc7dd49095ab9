/**
 * Image archives made here for the store's tests, the way `podman save` and `skopeo` lay them out:
 * a docker-archive (`manifest.json`, plain layer tars, config `<hex>.json`) or an OCI layout
 * (`oci-layout`, `index.json`, gzip layers under `blobs/sha256/`), as a directory or a tar of one.
 *
 * Each layer is a directory tree (tmp.ts specs) archived with GNU tar, `.wh.` whiteouts included, so the
 * layer tars are what real tools write (pax headers, hard links), not what this project writes.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { gzipSync } from "node:zlib";
import { writeTree, type TreeSpec } from "./tmp";

export interface ArchiveSpec {
  format: "docker-archive" | "oci";
  /** Layers bottom first. */
  layers: TreeSpec[];
  name?: string;
  /** Extra config fields (e.g. a distinct `created`, so two images differ). */
  config?: Record<string, unknown>;
}

export function sha256hex(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

function tarOf(dir: string, out: string): Buffer {
  // Reproducible: the same tree gives the same bytes (no times, pids or host owners in the headers).
  const r = spawnSync(
    "tar",
    [
      "--format=pax",
      "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
      "--mtime=@0",
      "--numeric-owner",
      "--owner=0",
      "--group=0",
      "--sort=name",
      "-C",
      dir,
      "-cf",
      out,
      ".",
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  return fs.readFileSync(out);
}

/** The layer tars of `spec`, uncompressed, built under `work`. */
export function layerTars(spec: ArchiveSpec, work: string): Buffer[] {
  return spec.layers.map((tree, i) => {
    const dir = path.join(work, `layer${i}`);
    fs.mkdirSync(dir, { recursive: true });
    writeTree(dir, tree);
    return tarOf(dir, path.join(work, `layer${i}.tar`));
  });
}

export interface BuiltArchive {
  /** The layout directory. */
  dir: string;
  /** The image ID (sha256 of the config), "sha256:…". */
  id: string;
  config: Buffer;
  diffIds: string[];
}

/** Writes the layout of `spec` into `dir` (which must not exist). */
export function buildLayout(spec: ArchiveSpec, dir: string, work: string): BuiltArchive {
  const tars = layerTars(spec, work);
  const diffIds = tars.map((t) => `sha256:${sha256hex(t)}`);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: diffIds.map(() => ({ created_by: "test" })),
      ...spec.config,
    }),
  );
  const configHex = sha256hex(config);
  fs.mkdirSync(dir, { recursive: true });
  if (spec.format === "docker-archive") {
    const layers = tars.map((t) => {
      const name = `${sha256hex(t)}.tar`;
      fs.writeFileSync(path.join(dir, name), t);
      return name;
    });
    fs.writeFileSync(path.join(dir, `${configHex}.json`), config);
    const manifest = [
      { Config: `${configHex}.json`, RepoTags: spec.name ? [spec.name] : [], Layers: layers },
    ];
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
  } else {
    const blobs = path.join(dir, "blobs", "sha256");
    fs.mkdirSync(blobs, { recursive: true });
    const put = (data: Buffer): { digest: string; size: number } => {
      const hex = sha256hex(data);
      fs.writeFileSync(path.join(blobs, hex), data);
      return { digest: `sha256:${hex}`, size: data.length };
    };
    const layers = tars.map((t) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      ...put(gzipSync(t)),
    }));
    const manifest = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.oci.image.config.v1+json", ...put(config) },
          layers,
        }),
      ),
    );
    const annotations = spec.name ? { "org.opencontainers.image.ref.name": spec.name } : undefined;
    const index = {
      schemaVersion: 2,
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest, annotations }],
    };
    fs.writeFileSync(path.join(dir, "index.json"), JSON.stringify(index));
    fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  }
  return { dir, id: `sha256:${configHex}`, config, diffIds };
}

/** A tar of the layout directory `dir`. */
export function tarLayout(dir: string, out: string): string {
  const r = spawnSync("tar", ["-C", dir, "-cf", out, "."], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  return out;
}
