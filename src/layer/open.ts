/**
 * Opening layers: the one place that decides what kind of layer a branch is.
 *
 * Invariant: every layer of a union and of the image tools is made here (or by a factory a caller
 * passes instead), so a new kind of layer is added to `openLayer` alone. A read-only branch that is a
 * regular file is a tar archive (tar/layer.ts); anything else is a directory. The tar layer's code is
 * loaded only when a branch is a file: a directory stack never loads it.
 */
import * as fs from "node:fs";
import { bytesOf } from "../sys/bytes";
import type { AtimePolicy } from "./atime";
import { DirLayer, WritableDirLayer } from "./dir";
import { tarModules } from "./tar/load";
import type { Layer, WritableLayer } from "./types";

export { isTarArchive } from "./tar/load";

/** What a union needs of one branch to open it as a layer. */
export interface LayerSpec {
  /** The branch's absolute byte-string path. */
  path: string;
  /** Position in the union, top first (-1: not part of a union). */
  index: number;
  writable: boolean;
  /** Whether whiteouts in it hide lower layers (aufs `rr` does not look for them). */
  honoursWhiteouts: boolean;
  /** What callers' reads do to access times (atime.ts); none: everything is opened O_NOATIME. */
  atime?: AtimePolicy;
}

/** Opens a branch as a layer. */
export type LayerFactory = (spec: LayerSpec) => Layer;

export const openLayer: LayerFactory = (spec) => {
  const opts = { index: spec.index, honoursWhiteouts: spec.honoursWhiteouts, atime: spec.atime };
  if (spec.writable) return new WritableDirLayer(spec.path, opts);
  if (isFile(spec.path))
    return new (tarModules().TarLayer)(spec.path, {
      ...opts,
      warn: (m) => console.error(`unionfs-ts: warning: ${m}`),
    });
  return new DirLayer(spec.path, opts);
};

/** Whether byte-string `path` names a regular file (following symlinks, as opening it does). */
function isFile(path: string): boolean {
  try {
    return fs.statSync(bytesOf(path)).isFile();
  } catch {
    return false;
  }
}

/** A read-only view of the directory at byte-string path `path` that honours whiteouts (image tools). */
export function openReadOnly(path: string, index = -1): Layer {
  return openLayer({ path, index, writable: false, honoursWhiteouts: true });
}

/**
 * A writable directory that is no branch (the work dir, a directory a layer is unpacked into): never
 * read for callers, so never an access time.
 */
export function openWritableDir(path: string): WritableLayer {
  return new WritableDirLayer(path);
}

export function isWritable(layer: Layer): layer is WritableLayer {
  return layer.writable;
}
