/**
 * `ImageStore`: the image store as one object (what the CLI's `load`, `images`, `rmi`, `run --image`,
 * `ps`, `rm`, `commit` and `save` use, and what the library exports).
 *
 * Invariants: every method that changes the store holds its exclusive lock for the whole change, and
 * every method that reads it a shared lock (layout.ts); no method keeps a lock once it returned, so a
 * running container holds none (its record says it runs). Bad input is a UsageError, nothing changed.
 */
import * as fs from "node:fs";
import type { Readable, Writable } from "node:stream";
import { resolveOverlay2 } from "../overlay2";
import { UsageError } from "../../errors";
import { commitContainer, type CommitOptions } from "./commit";
import {
  createContainer,
  findContainer,
  isRunning,
  listContainers,
  processStart,
  removeContainer,
  writeContainer,
  type ContainerRecord,
} from "./containers";
import { hexOf, type Digest } from "./digest";
import { findImage, listImages, type ImageRecord } from "./images";
import { StorePaths, storeDir, withLock } from "./layout";
import { readLayer } from "./layers";
import { loadImages, type LoadedImage, type LoadOptions } from "./load";
import { nameCandidates, normalizeName } from "./names";
import { removeImage, type RemoveResult } from "./remove";
import { saveImage, type SaveOptions } from "./save";

export interface ImageInfo {
  id: Digest;
  names: string[];
  created: string | undefined;
  /** Bytes of file data in its layers (shared layers counted for every image). */
  size: number;
  layers: number;
}

export interface ContainerInfo extends ContainerRecord {
  running: boolean;
}

export interface ContainerMount {
  /** The writable layer (`overlay2/<mount>/diff`) and its work dir (`overlay2/<mount>/work`). */
  rw: string;
  workdir: string;
  /** The init layer (`overlay2/<mount>-init/diff`). */
  init: string;
  /** The image's layers, top first. */
  layers: string[];
}

export interface StoreOptions {
  /** The store directory (default: $UNIONFS_TS_STORE, else /var/lib/unionfs-ts). */
  dir?: string;
  /** Told once when a call has to wait for another process using the store. */
  onWait?: (line: string) => void;
}

export class ImageStore {
  readonly paths: StorePaths;
  private readonly onWait: ((line: string) => void) | undefined;

  constructor(opts: StoreOptions = {}) {
    this.paths = new StorePaths(storeDir(opts.dir));
    this.onWait = opts.onWait;
  }

  get dir(): string {
    return this.paths.root;
  }

  private write<T>(fn: () => Promise<T> | T): Promise<T> {
    return withLock(this.paths, true, fn, this.onWait);
  }

  private read<T>(fn: () => Promise<T> | T): Promise<T> {
    return withLock(this.paths, false, fn, this.onWait);
  }

  /** Loads every image of an archive file, a layout directory or a stream. */
  load(
    input: { file: string } | { dir: string } | { stream: Readable; label: string },
    opts?: LoadOptions,
  ): Promise<LoadedImage[]> {
    return this.write(() => loadImages(this.paths, input, opts));
  }

  images(): Promise<ImageInfo[]> {
    return this.read(() =>
      listImages(this.paths).map((i) => ({
        id: i.id,
        names: i.names,
        created: i.config.created,
        size: i.chains.reduce((sum, c) => sum + (readLayer(this.paths, c)?.size ?? 0), 0),
        layers: i.chains.length,
      })),
    );
  }

  image(ref: string): Promise<ImageRecord> {
    return this.read(() => findImage(this.paths, ref));
  }

  /** `rmi`: a name, or an image and the layers nothing else uses. */
  removeImage(ref: string): Promise<RemoveResult> {
    return this.write(() => removeImage(this.paths, ref));
  }

  containers(): Promise<ContainerInfo[]> {
    return this.read(() => listContainers(this.paths).map((c) => ({ ...c, running: isRunning(c) })));
  }

  /**
   * A new container of `image`: its init and writable layers, recorded as run by this process. `keep`
   * says whether it outlives its command.
   */
  createContainer(
    image: string,
    opts: { name?: string; command: string[]; keep: boolean },
  ): Promise<ContainerRecord> {
    return this.write(() => {
      const found = findImage(this.paths, image);
      const c = createContainer(this.paths, { image: found, imageName: image, ...opts });
      const start = processStart(process.pid);
      const running: ContainerRecord = {
        ...c,
        pid: process.pid,
        ...(start === undefined ? {} : { pidStart: start }),
      };
      writeContainer(this.paths, running);
      return running;
    });
  }

  /**
   * What a container's view is made of, as `mount-overlay2` resolves it: its writable layer and work
   * dir, its init layer, and its image's layers (top first).
   */
  containerMount(c: ContainerRecord): ContainerMount {
    const { branches, workdir } = resolveOverlay2(this.paths.overlay2, c.mountId);
    const [rw, init, ...layers] = branches.map((b) => b.path);
    if (rw === undefined || init === undefined || workdir === undefined) {
      throw new UsageError(`container '${c.name}' has no writable or init layer (damaged store?)`);
    }
    return { rw, workdir, init, layers };
  }

  /** Marks a container as no longer running, or removes it when it was not to be kept. */
  async containerEnded(c: ContainerRecord): Promise<void> {
    await this.write(() => {
      const { pid: _pid, pidStart: _start, ...ended } = c;
      if (c.keep) writeContainer(this.paths, ended);
      else removeContainer(this.paths, ended);
    });
  }

  container(ref: string): Promise<ContainerRecord> {
    return this.read(() => findContainer(this.paths, ref));
  }

  removeContainer(ref: string): Promise<ContainerRecord> {
    return this.write(() => {
      const c = findContainer(this.paths, ref);
      removeContainer(this.paths, c);
      return c;
    });
  }

  /** `commit CONTAINER [NAME]`: returns the new image's ID. */
  commit(container: string, name: string | undefined, opts?: CommitOptions): Promise<Digest> {
    const normalized = name === undefined ? undefined : normalizeName(name);
    return this.write(() =>
      commitContainer(this.paths, findContainer(this.paths, container), normalized, opts),
    );
  }

  /** `save IMAGE`: an oci-archive to a file or a stream; returns the image ID in the archive. */
  save(ref: string, output: { file: string } | { stream: Writable }, opts?: SaveOptions): Promise<Digest> {
    return this.read(async () => {
      const image = findImage(this.paths, ref);
      const name = nameCandidates(ref).find((n) => image.names.includes(n)) ?? image.names[0];
      return saveImage(this.paths, image, name, output, opts);
    });
  }

  /** Whether the store directory exists. */
  exists(): boolean {
    return fs.existsSync(this.paths.root);
  }
}

/** The 12 hex digits `images` and `ps` show. */
export function shortId(id: string): string {
  return (id.startsWith("sha256:") ? hexOf(id as Digest) : id).slice(0, 12);
}
