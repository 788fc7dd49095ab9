/**
 * unionfs-ts as a library: mount a union from a Node program (a container runtime, a build tool).
 *
 * Invariants: `mount` validates exactly as the CLI does and rejects (nothing mounted, nothing written)
 * on bad input; it resolves once the mount answers requests. The FUSE server runs on its own thread,
 * so the calling thread may use the mount with async `fs` calls (its sync calls block only itself).
 * An abnormal end of serving is reported as an `error` event before `done` resolves.
 */
import { EventEmitter } from "node:events";
import * as nodePath from "node:path";
import { kernelTransport } from "./fuse";
import { VFS_FLAGS } from "./fuse/transport";
import { checkBranches, checkMountpoint, checkWorkdir, UsageError } from "./unionfs/branches";
import type { BranchSpec, IdRangeSpec, UnionConfig, WhiteoutFormat } from "./unionfs/config";

export interface MountParams {
  /** Read-only layers, top first. */
  layers: string[];
  /** The writable layer; omit for a read-only mount. */
  upper?: string;
  /** Where copy-ups are built (same filesystem as `upper`); default: a hidden dir inside `upper`. */
  work?: string;
  mountpoint: string;
  options?: {
    /** On-disk format of new whiteouts: "aufs" (`.wh.` files, the default) or "overlay" (char 0/0). */
    whiteout?: WhiteoutFormat;
    uidMap?: IdRangeSpec[];
    gidMap?: IdRangeSpec[];
    /** Name shown as the mount source. */
    fsname?: string;
    /** Generic mount flags the kernel enforces: "ro", "nosuid", "nodev", "noexec", "noatime", … */
    flags?: string[];
    debug?: boolean;
  };
}

export interface UnionMount extends EventEmitter {
  readonly mountpoint: string;
  /** Resolves when the mount is gone and serving has stopped. */
  readonly done: Promise<void>;
  /** Unmounts (lazily if files are open) and waits for `done`. */
  unmount(): Promise<void>;
}

/** Builds the config a `MountParams` describes (exported for callers that serve it themselves). */
export function configOf(p: MountParams): UnionConfig {
  const branches: BranchSpec[] = [
    ...(p.upper === undefined ? [] : [{ path: nodePath.resolve(p.upper), mode: "rw" as const }]),
    ...p.layers.map((l) => ({ path: nodePath.resolve(l), mode: "ro" as const })),
  ];
  return {
    branches,
    whiteout: p.options?.whiteout ?? "aufs",
    ...(p.work === undefined ? {} : { workdir: nodePath.resolve(p.work) }),
    ...(p.options?.uidMap ? { uidMap: p.options.uidMap } : {}),
    ...(p.options?.gidMap ? { gidMap: p.options.gidMap } : {}),
  };
}

/** Generic flags as given; anything else is a UsageError (the library validates like the CLI). */
function checkedFlags(flags: readonly string[]): string[] {
  const bad = flags.filter((f) => !VFS_FLAGS.has(f));
  if (bad.length > 0) throw new UsageError(`unknown mount flag '${bad.join(",")}'`);
  return [...flags];
}

export async function mount(p: MountParams): Promise<UnionMount> {
  const config = configOf(p);
  const mountpoint = nodePath.resolve(p.mountpoint);
  checkBranches(config.branches);
  checkWorkdir(config, mountpoint);
  checkMountpoint(mountpoint, config);
  const m = await kernelTransport.mount({
    mountpoint,
    config,
    fsname: p.options?.fsname ?? "unionfs-ts",
    flags: checkedFlags(p.options?.flags ?? []),
    debug: p.options?.debug === true,
  });
  const emitter = new EventEmitter();
  const done = m.done.then(() => {
    if (m.error !== undefined && emitter.listenerCount("error") > 0) emitter.emit("error", m.error);
  });
  return Object.assign(emitter, { mountpoint, done, unmount: () => m.unmount().then(() => done) });
}

export { createUnion } from "./unionfs";
export type { UnionOps, Attr, Caller, DirEntry, UnionConfig, BranchSpec, WhiteoutFormat } from "./unionfs";
export { UsageError } from "./unionfs/branches";
export { FsError } from "./errors";
