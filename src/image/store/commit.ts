/**
 * `commit`: a new image from a container's writable layer on top of the image it runs, as `docker
 * commit` makes one.
 *
 * Invariants: only the writable layer (`overlay2/<mount>/diff`) is archived, never the init layer or
 * the union's work dir; it is exported as an OCI layer tar (whiteouts as `.wh.` entries, extended
 * attributes as the exporter writes them) and registered like a loaded layer, so the new image owns a
 * layer of its own and the container can be removed afterwards. The new config is the old one with the
 * layer's diff ID and a history entry appended and a new `created` time. A running container is refused.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { exportLayer } from "../export";
import type { Progress } from "../progress";
import { UsageError } from "../../errors";
import { containerDirs, isRunning, type ContainerRecord } from "./containers";
import { hashFile, type Digest } from "./digest";
import { addImage, readImage, type ImageConfig } from "./images";
import { tempDir, type StorePaths } from "./layout";
import { registerLayer } from "./layers";

export interface CommitOptions {
  onWarning?: (message: string) => void;
  /** The history entry's comment (`docker commit -m`). */
  message?: string;
  /** Paths of the writable layer to leave out, with all they hold (as `export --exclude`). */
  exclude?: readonly string[];
  /** Told of the export of the writable layer (bytes of file data, entries). */
  progress?: Progress;
}

/** The config of an image with one more layer, `diffId`, made by `createdBy`. */
export function childConfig(
  parent: ImageConfig,
  diffId: Digest,
  createdBy: string,
  comment?: string,
): ImageConfig {
  const created = new Date().toISOString();
  const entry: Record<string, unknown> = { created, created_by: createdBy };
  if (comment !== undefined) entry.comment = comment;
  return {
    ...parent,
    created,
    rootfs: { type: "layers", diff_ids: [...parent.rootfs.diff_ids, diffId] },
    history: [...(parent.history ?? []), entry],
  };
}

/** Commits container `c` as a new image named `name` (normalized already, or undefined for none). */
export async function commitContainer(
  paths: StorePaths,
  c: ContainerRecord,
  name: string | undefined,
  opts: CommitOptions = {},
): Promise<Digest> {
  if (isRunning(c))
    throw new UsageError(`container '${c.name}' is running (pid ${c.pid}); commit it once it ended`);
  const image = readImage(paths, c.image);
  if (image === undefined) throw new UsageError(`container '${c.name}' runs image ${c.image}, which is gone`);
  const staging = tempDir(paths, "commit");
  try {
    const tar = nodePath.join(staging, "layer.tar");
    const out = fs.createWriteStream(tar, { mode: 0o600 });
    await exportLayer(containerDirs(paths, c).rw, out, {
      ...(opts.onWarning === undefined ? {} : { onWarning: opts.onWarning }),
      ...(opts.exclude === undefined ? {} : { exclude: opts.exclude }),
      ...(opts.progress === undefined ? {} : { progress: opts.progress }),
    });
    const { digest: diffId } = await hashFile(tar);
    const top = image.chains[image.chains.length - 1];
    const blob = { file: tar, diffId, what: `the layer of container '${c.name}'` };
    await registerLayer(paths, blob, top, {
      ...(opts.onWarning === undefined ? {} : { onWarning: opts.onWarning }),
    });
    const config = childConfig(image.config, diffId, `unionfs-ts commit ${c.name}`, opts.message);
    return addImage(paths, Buffer.from(JSON.stringify(config)), name === undefined ? [] : [name], image.id);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
