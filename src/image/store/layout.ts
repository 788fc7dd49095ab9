/**
 * Where everything lives in an image store, in the manner of Docker's `/var/lib/docker` (overlay2 driver):
 *
 *   STORE/overlay2/<ID>/diff/            a layer's files (overlay-format whiteouts: 0/0 devices, opaque xattr)
 *   STORE/overlay2/<ID>/link             its short name; STORE/overlay2/l/<SHORT> -> ../<ID>/diff
 *   STORE/overlay2/<ID>/lower            the layers below, top first: l/SHORT1:l/SHORT2 (none for a base)
 *   STORE/overlay2/<ID>/work/            container layers only (the union's work dir)
 *   STORE/overlay2/<ID>-init/            a container's init layer
 *   STORE/image/overlay2/layerdb/sha256/<CHAIN>/{diff,cache-id,parent,size,tar-split.json.gz}
 *   STORE/image/overlay2/layerdb/mounts/<CONTAINER>/{mount-id,init-id,parent}
 *   STORE/image/overlay2/imagedb/content/sha256/<IMAGE>   the image's config, byte for byte
 *   STORE/image/overlay2/imagedb/metadata/sha256/<IMAGE>/parent   (committed images)
 *   STORE/image/overlay2/repositories.json                  names → image IDs
 *   STORE/containers/<CONTAINER>/config.json                kept (and running) containers
 *   STORE/tmp/                                              partial work; never read as content
 *   STORE/lock                                              flock: shared to read, exclusive to change
 *
 * `overlay2/` is exactly the layout `unionfs-ts mount-overlay2` (and Docker) read, so a layer mounts by
 * hand; `<CHAIN>`, `<IMAGE>` and `<CONTAINER>` are 64 hex digits, `<ID>` a random 64-hex cache ID.
 *
 * Invariants: a layer, image or container exists once its metadata directory or file is in place, and
 * that is written last, by a rename (`writeFileAtomic`, `publishDir`); anything else (a directory in
 * `tmp/`, an `overlay2/<ID>` no layerdb entry names) is debris of an interrupted operation and is never
 * read as content. Every change happens under the exclusive lock.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { codeOf, UsageError } from "../../errors";
import { flock, LOCK_EX, LOCK_NB, LOCK_SH } from "../../sys/libc";
import { hexOf, type Digest } from "./digest";

export const DEFAULT_STORE = "/var/lib/unionfs-ts";
export const STORE_ENV = "UNIONFS_TS_STORE";

/** The store directory: `--store`, else $UNIONFS_TS_STORE, else /var/lib/unionfs-ts. */
export function storeDir(option: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const dir = option ?? env[STORE_ENV] ?? DEFAULT_STORE;
  if (dir === "") throw new UsageError("the store directory is empty (--store or $UNIONFS_TS_STORE)");
  return nodePath.resolve(dir);
}

export class StorePaths {
  readonly overlay2: string;
  readonly meta: string;

  constructor(readonly root: string) {
    this.overlay2 = nodePath.join(root, "overlay2");
    this.meta = nodePath.join(root, "image", "overlay2");
  }

  layerDb(chain: Digest): string {
    return nodePath.join(this.meta, "layerdb", "sha256", hexOf(chain));
  }
  get layerDbRoot(): string {
    return nodePath.join(this.meta, "layerdb", "sha256");
  }
  mountDb(containerId: string): string {
    return nodePath.join(this.meta, "layerdb", "mounts", containerId);
  }
  layerDir(cacheId: string): string {
    return nodePath.join(this.overlay2, cacheId);
  }
  get links(): string {
    return nodePath.join(this.overlay2, "l");
  }
  imageConfig(id: Digest): string {
    return nodePath.join(this.imageContentRoot, hexOf(id));
  }
  get imageContentRoot(): string {
    return nodePath.join(this.meta, "imagedb", "content", "sha256");
  }
  imageMeta(id: Digest): string {
    return nodePath.join(this.meta, "imagedb", "metadata", "sha256", hexOf(id));
  }
  get repositories(): string {
    return nodePath.join(this.meta, "repositories.json");
  }
  get containers(): string {
    return nodePath.join(this.root, "containers");
  }
  container(id: string): string {
    return nodePath.join(this.containers, id);
  }
  get tmp(): string {
    return nodePath.join(this.root, "tmp");
  }
  get lock(): string {
    return nodePath.join(this.root, "lock");
  }
}

/** 64 random hex digits (cache IDs, container IDs). */
export function randomId(): string {
  return randomBytes(32).toString("hex");
}

/** A short link name as Docker makes them: 26 characters of A-Z and 0-9. */
export function shortName(): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return [...randomBytes(26)].map((b) => alphabet[b % alphabet.length]).join("");
}

/** Writes `data` to `file` through a temp file in the same directory and a rename. */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(nodePath.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data, { mode });
  fs.renameSync(tmp, file);
}

/** Names in `dir` that are 64 hex digits (IDs); none when `dir` does not exist. */
export function hexEntries(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if (codeOf(err) === "ENOENT") return [];
    throw err;
  }
  return names.filter((n) => /^[0-9a-f]{64}$/.test(n));
}

/** Reads a small text file, trimmed; undefined when it does not exist. */
export function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch (err) {
    if (codeOf(err) === "ENOENT" || codeOf(err) === "ENOTDIR") return undefined;
    throw err;
  }
}

/** A new empty directory under the store's tmp/ (same filesystem as its content, for renames). */
export function tempDir(paths: StorePaths, label: string): string {
  fs.mkdirSync(paths.tmp, { recursive: true, mode: 0o700 });
  return fs.mkdtempSync(nodePath.join(paths.tmp, `${label}-`));
}

/** Renames a directory made in tmp/ into its final place (the step that makes it exist). */
export function publishDir(from: string, to: string): void {
  fs.mkdirSync(nodePath.dirname(to), { recursive: true, mode: 0o700 });
  fs.renameSync(from, to);
}

export interface StoreLock {
  release(): void;
}

/**
 * Takes the store's lock (creating the store when `exclusive`): shared for reading, exclusive for
 * changing. Says once on stderr (through `onWait`) when it has to wait for another process.
 */
export function lockStore(paths: StorePaths, exclusive: boolean, onWait?: (line: string) => void): StoreLock {
  if (exclusive) fs.mkdirSync(paths.root, { recursive: true, mode: 0o711 });
  let fd: number;
  try {
    fd = fs.openSync(paths.lock, exclusive ? "a" : "r");
  } catch (err) {
    if (!exclusive && codeOf(err) === "ENOENT") return { release: () => undefined }; // no store yet
    if (codeOf(err) === "ENOENT") throw new UsageError(`cannot create the store '${paths.root}'`);
    throw err;
  }
  const op = exclusive ? LOCK_EX : LOCK_SH;
  if (!flock(fd, op | LOCK_NB)) {
    onWait?.(`waiting for another unionfs-ts process using the store ${paths.root}`);
    flock(fd, op);
  }
  return { release: () => fs.closeSync(fd) };
}

/** Runs `fn` under the store's lock. */
export async function withLock<T>(
  paths: StorePaths,
  exclusive: boolean,
  fn: () => Promise<T> | T,
  onWait?: (line: string) => void,
): Promise<T> {
  const lock = lockStore(paths, exclusive, onWait);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
