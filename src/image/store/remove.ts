/**
 * `rmi`: removing an image name, an image, and the layers nothing uses any more.
 *
 * Invariants: a layer is removed only when no remaining image has it in its chain and no container
 * (kept or running) stands on an image that does; layers go top first, so a layer is never left above
 * a removed one. An image that a container runs is not removed (as Docker refuses), and nothing changes
 * then.
 */
import { UsageError } from "../../errors";
import { listContainers } from "./containers";
import type { Digest } from "./digest";
import { deleteImage, findImage, listImages, readNames, untag } from "./images";
import type { StorePaths } from "./layout";
import { removeLayer } from "./layers";
import { nameCandidates } from "./names";

export interface RemoveResult {
  untagged: string[];
  /** The image removed, if it was (not only a name). */
  deleted: Digest | undefined;
  /** Layers removed with it. */
  layers: number;
}

/** Chain IDs some image or container still needs. */
export function layersInUse(paths: StorePaths): Set<Digest> {
  const used = new Set<Digest>();
  for (const image of listImages(paths)) for (const c of image.chains) used.add(c);
  return used;
}

/** Removes image `id` and every layer of its chain nothing else uses, top first. */
function deleteWithLayers(paths: StorePaths, id: Digest, chains: Digest[]): number {
  deleteImage(paths, id);
  const used = layersInUse(paths);
  let removed = 0;
  for (const chain of [...chains].reverse()) {
    if (used.has(chain)) break; // everything below is used too
    removeLayer(paths, chain);
    removed += 1;
  }
  return removed;
}

/**
 * `rmi IMAGE`: by name, removes that name (and the image when it was its last name); by ID, removes
 * the image with all its names. The caller holds the exclusive lock.
 */
export function removeImage(paths: StorePaths, typed: string): RemoveResult {
  const image = findImage(paths, typed);
  const names = readNames(paths);
  const byName = nameCandidates(typed).find((n) => names.get(n) === image.id);
  const lastName = byName === undefined || image.names.length <= 1;
  if (lastName) {
    const users = listContainers(paths).filter((c) => c.image === image.id);
    if (users.length > 0) {
      throw new UsageError(
        `image '${typed}' is used by container${users.length > 1 ? "s" : ""} ${users.map((c) => `'${c.name}'`).join(", ")} (remove ${users.length > 1 ? "them" : "it"} first: unionfs-ts rm NAME)`,
      );
    }
  }
  if (!lastName && byName !== undefined) {
    untag(paths, byName);
    return { untagged: [byName], deleted: undefined, layers: 0 };
  }
  const layers = deleteWithLayers(paths, image.id, image.chains);
  return { untagged: image.names, deleted: image.id, layers };
}
