/**
 * Containers of the store: what `run --image` stacks and `--keep` keeps.
 *
 * A container has a record `containers/<ID>/config.json`, an init layer `overlay2/<MOUNT>-init/` right
 * above its image's top layer (made empty here; `run` writes /etc/hosts, /etc/hostname, /etc/resolv.conf
 * and its mount points into it, src/mountns/initlayer.ts), and its writable layer `overlay2/<MOUNT>/` (`diff/`, `work/`) above that,
 * both in Docker's overlay2 layout (`lower` files of `l/` links), plus `layerdb/mounts/<ID>/` naming them.
 * So `unionfs-ts mount-overlay2 STORE/overlay2 <MOUNT> DIR` mounts a container's view by hand.
 *
 * Invariants: the record is written last when creating and removed first when removing, so a
 * container exists exactly when its record does; names are unique; a container is running while the
 * process recorded in it (pid and start time, so a reused pid does not count) is alive, and a running
 * container is never removed. Image layers are never copied: both new layers start empty.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { UsageError } from "../../errors";
import type { Digest } from "./digest";
import type { ImageRecord } from "./images";
import {
  hexEntries,
  publishDir,
  randomId,
  readText,
  tempDir,
  writeFileAtomic,
  type StorePaths,
} from "./layout";
import { publishLayerDir, removeLayerDir, requireLayer } from "./layers";
import { parseJson } from "./source";

export interface ContainerRecord {
  id: string;
  name: string;
  /** The image it runs, by ID, and the name it was started with. */
  image: Digest;
  imageName: string;
  /** `overlay2/<mountId>/` is its writable layer, `overlay2/<mountId>-init/` its init layer. */
  mountId: string;
  created: string;
  command: string[];
  /** Kept after its command ends (`run --keep`); otherwise removed then. */
  keep: boolean;
  /** The `run` process using it, while it runs. */
  pid?: number;
  pidStart?: string;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function checkContainerName(name: string): void {
  if (!NAME.test(name)) {
    throw new UsageError(`'${name}' is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128)`);
  }
}

function recordFile(paths: StorePaths, id: string): string {
  return nodePath.join(paths.container(id), "config.json");
}

export function readContainer(paths: StorePaths, id: string): ContainerRecord | undefined {
  const file = recordFile(paths, id);
  if (!fs.existsSync(file)) return undefined;
  return parseJson(fs.readFileSync(file), file) as ContainerRecord;
}

export function writeContainer(paths: StorePaths, c: ContainerRecord): void {
  writeFileAtomic(recordFile(paths, c.id), `${JSON.stringify(c, null, 2)}\n`);
}

export function listContainers(paths: StorePaths): ContainerRecord[] {
  return hexEntries(paths.containers)
    .map((id) => readContainer(paths, id))
    .filter((c): c is ContainerRecord => c !== undefined)
    .sort((a, b) => b.created.localeCompare(a.created));
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), or undefined when there is no such process. */
export function processStart(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

export function isRunning(c: ContainerRecord): boolean {
  return c.pid !== undefined && c.pidStart !== undefined && processStart(c.pid) === c.pidStart;
}

/** The container `typed` names: its name, its ID, or a unique ID prefix (4 hex digits or more). */
export function findContainer(paths: StorePaths, typed: string): ContainerRecord {
  const all = listContainers(paths);
  const byName = all.find((c) => c.name === typed);
  if (byName !== undefined) return byName;
  if (/^[0-9a-f]{4,64}$/.test(typed)) {
    const hits = all.filter((c) => c.id.startsWith(typed));
    if (hits.length === 1) return hits[0] as ContainerRecord;
    if (hits.length > 1) throw new UsageError(`'${typed}' is the start of ${hits.length} container IDs`);
  }
  throw new UsageError(`no container '${typed}' in the store (see: unionfs-ts ps -a)`);
}

/** A free name in the manner of `docker run` without `--name`. */
function generatedName(taken: Set<string>): string {
  for (;;) {
    const name = `c-${randomId().slice(0, 10)}`;
    if (!taken.has(name)) return name;
  }
}

export interface NewContainer {
  image: ImageRecord;
  imageName: string;
  name?: string;
  command: string[];
  keep: boolean;
}

/** Makes the container's init and writable layers above its image's top layer, then its record. */
export function createContainer(paths: StorePaths, req: NewContainer): ContainerRecord {
  const taken = new Set(listContainers(paths).map((c) => c.name));
  if (req.name !== undefined) {
    checkContainerName(req.name);
    if (taken.has(req.name)) throw new UsageError(`a container named '${req.name}' exists already`);
  }
  const top = req.image.chains[req.image.chains.length - 1];
  const below = top === undefined ? undefined : requireLayer(paths, top).cacheId;
  const c: ContainerRecord = {
    id: randomId(),
    name: req.name ?? generatedName(taken),
    image: req.image.id,
    imageName: req.imageName,
    mountId: randomId(),
    created: new Date().toISOString(),
    command: req.command,
    keep: req.keep,
  };
  const staging = tempDir(paths, "container");
  try {
    const init = nodePath.join(staging, "init");
    fs.mkdirSync(nodePath.join(init, "diff"), { recursive: true, mode: 0o755 }); // run fills it
    publishLayerDir(paths, init, below, `${c.mountId}-init`);
    const rw = nodePath.join(staging, "rw");
    fs.mkdirSync(nodePath.join(rw, "diff"), { recursive: true, mode: 0o755 });
    fs.mkdirSync(nodePath.join(rw, "work"), { mode: 0o700 });
    publishLayerDir(paths, rw, `${c.mountId}-init`, c.mountId);
    const db = nodePath.join(staging, "db");
    fs.mkdirSync(db);
    fs.writeFileSync(nodePath.join(db, "mount-id"), c.mountId);
    fs.writeFileSync(nodePath.join(db, "init-id"), `${c.mountId}-init`);
    if (top !== undefined) fs.writeFileSync(nodePath.join(db, "parent"), top);
    publishDir(db, paths.mountDb(c.id));
    writeContainer(paths, c);
    return c;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** Removes a container that is not running: its record first, then its layers. */
export function removeContainer(paths: StorePaths, c: ContainerRecord): void {
  if (isRunning(c)) throw new UsageError(`container '${c.name}' is running (pid ${c.pid})`);
  const trash = tempDir(paths, "rm");
  try {
    fs.renameSync(paths.container(c.id), nodePath.join(trash, "record"));
    if (fs.existsSync(paths.mountDb(c.id))) fs.renameSync(paths.mountDb(c.id), nodePath.join(trash, "db"));
    removeLayerDir(paths, c.mountId, trash);
    removeLayerDir(paths, `${c.mountId}-init`, trash);
  } finally {
    fs.rmSync(trash, { recursive: true, force: true });
  }
}

/** The container's writable layer (`overlay2/<mountId>/diff`) and its init layer's diff. */
export function containerDirs(paths: StorePaths, c: ContainerRecord): { rw: string; init: string } {
  return {
    rw: nodePath.join(paths.layerDir(c.mountId), "diff"),
    init: nodePath.join(paths.layerDir(`${c.mountId}-init`), "diff"),
  };
}
