/**
 * unionfs-ts as a library: mount a union from a Node program (a container runtime, a build tool).
 *
 * Invariants: `mount` validates exactly as the CLI does and rejects (nothing mounted, nothing written)
 * on bad input; it resolves once the mount answers requests. The FUSE server runs on its own thread
 * (kernel transport, the default), so the calling thread may use the mount with async `fs` calls (its
 * sync calls block only itself); the fuse-native transport serves on the calling thread.
 * An abnormal end of serving is reported as an `error` event before `done` resolves. Unless told
 * otherwise, the process's exit signals (SIGINT, SIGTERM, SIGHUP) unmount every such mount before the
 * process dies of them (also one still being set up: it is in the mount table before it answers), and a
 * dead mount left at the mountpoint by a process that died is cleared first, so Ctrl-C never leaves
 * "transport endpoint is not connected" behind. An abort while mounting unmounts once the mount is up.
 */
import { EventEmitter } from "node:events";
import * as nodePath from "node:path";
import { chooseTransport, cleanDeadMount, KernelMount, type MountedFs, type TransportName } from "./fuse";
import { VFS_FLAGS } from "./fuse/transport";
import { UsageError } from "./errors";
import { checkBranches, checkMountpoint, checkWorkdir } from "./unionfs/branches";
import type { BranchSpec, IdRangeSpec, PassthroughMode, UnionConfig, WhiteoutFormat } from "./unionfs/config";

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
    /** Mount read-only even with an `upper` (as `-o ro`): writes fail with EROFS, nothing is written. */
    readOnly?: boolean;
    /** Which open files the kernel reads and writes directly (as `-o passthrough=`; default "auto"). */
    passthrough?: PassthroughMode;
    /** How long the kernel may cache names and attributes, in seconds (as `-o timeout=`; a day). */
    timeout?: number;
    debug?: boolean;
    /**
     * What serves the mount (as `--transport`): "kernel" (the default: /dev/fuse spoken directly, on a
     * thread of its own; needs root), "fuse-native" (libfuse through the optional `fuse-native` package,
     * which mounts with fusermount as any user; it serves on this thread, so sync fs calls into the mount
     * from it hang) or "auto" (kernel when root and /dev/fuse opens, else fuse-native).
     */
    transport?: TransportName;
    /**
     * Unmount when the process gets SIGINT, SIGTERM or SIGHUP, then die of that signal as it would
     * have (default true). With false the caller handles signals (and unmounts) itself.
     */
    unmountOnSignal?: boolean;
  };
  /** Aborting it unmounts (lazily when files are open). */
  signal?: AbortSignal;
}

export interface UnionMount extends EventEmitter {
  readonly mountpoint: string;
  /** The transport serving it: "kernel" or "fuse-native". */
  readonly transport: string;
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
  if (p.options?.readOnly === true) for (const b of branches) b.mode = "ro";
  const o = p.options ?? {};
  return {
    branches,
    whiteout: o.whiteout ?? "aufs",
    ...(o.passthrough === undefined ? {} : { passthrough: o.passthrough }),
    ...(o.timeout === undefined ? {} : { cacheTimeout: o.timeout }),
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

/** Mounts made by this process through `mount()` that want unmounting on an exit signal. */
const onSignal = new Set<() => Promise<void>>();
const EXIT_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Unmounts every such mount, then dies of `sig` as the process would have without the handler. */
function unmountAllAndDie(sig: NodeJS.Signals): void {
  for (const s of EXIT_SIGNALS) process.removeListener(s, unmountAllAndDie);
  void Promise.allSettled([...onSignal].map((u) => u())).then(() => process.kill(process.pid, sig));
}

function watchSignals(unmount: () => Promise<void>): () => void {
  if (onSignal.size === 0) for (const s of EXIT_SIGNALS) process.on(s, unmountAllAndDie);
  onSignal.add(unmount);
  return () => {
    onSignal.delete(unmount);
    if (onSignal.size === 0) for (const s of EXIT_SIGNALS) process.removeListener(s, unmountAllAndDie);
  };
}

/** Why serving ended abnormally, where the transport says (the kernel one does). */
function errorOf(m: MountedFs): unknown {
  return m instanceof KernelMount ? m.error : undefined;
}

export async function mount(p: MountParams): Promise<UnionMount> {
  p.signal?.throwIfAborted();
  const config = configOf(p);
  const mountpoint = nodePath.resolve(p.mountpoint);
  const flags = checkedFlags([...(p.options?.readOnly === true ? ["ro"] : []), ...(p.options?.flags ?? [])]);
  checkBranches(config.branches);
  checkWorkdir(config, mountpoint);
  const { transport } = chooseTransport(p.options?.transport ?? "kernel");
  cleanDeadMount(mountpoint); // a mount left by a process that died (as the CLI does)
  checkMountpoint(mountpoint, config);
  const mounting = transport.mount({
    mountpoint,
    config,
    fsname: p.options?.fsname ?? "unionfs-ts",
    flags,
    debug: p.options?.debug === true,
  });
  // Watched from the start: the mount is in the mount table before it answers, and a signal or an abort
  // meanwhile must unmount it once it is up (dying at once would leave a dead mount behind).
  const stop = (): Promise<void> => mounting.then((m) => m.unmount());
  const unwatch = p.options?.unmountOnSignal === false ? (): void => undefined : watchSignals(stop);
  const onAbort = (): void => void stop().catch(() => undefined);
  p.signal?.addEventListener("abort", onAbort, { once: true });
  const m = await mounting.catch((err: unknown) => {
    unwatch();
    p.signal?.removeEventListener("abort", onAbort);
    throw err;
  });
  const emitter = new EventEmitter();
  const unmount = (): Promise<void> => m.unmount().then(() => done);
  const done = m.done.then(() => {
    unwatch();
    p.signal?.removeEventListener("abort", onAbort);
    const error = errorOf(m);
    if (error !== undefined && emitter.listenerCount("error") > 0) emitter.emit("error", error);
  });
  return Object.assign(emitter, { mountpoint, transport: transport.name, done, unmount });
}

export { createUnion } from "./unionfs";
export type { TransportName } from "./fuse";
export type { UnionOps, Attr, Caller, DirEntry, UnionConfig, BranchSpec, WhiteoutFormat } from "./unionfs";
export { UsageError } from "./errors";
export { FsError } from "./errors";

// Images: layer tools (src/image) and the image store (src/image/store), for engines and build tools.
export {
  diffLayer,
  formatChanges,
  exportLayer,
  importLayer,
  importLayerStream,
  Progress,
  resolveOverlay2,
  overlay2MountArgs,
  type Change,
  type ChangeKind,
  type ExportOptions,
  type ExportSummary,
  type ImportFormat,
  type ImportOptions,
  type ImportSummary,
  type Overlay2Mount,
  type ProgressOptions,
} from "./image";
export {
  ImageStore,
  DEFAULT_STORE,
  STORE_ENV,
  chainIds,
  normalizeName,
  type StoreOptions,
  type ImageInfo,
  type ImageRecord,
  type ImageConfig,
  type ContainerInfo,
  type ContainerRecord,
  type ContainerMount,
  type LoadedImage,
  type LoadOptions,
  type RemoveResult,
  type CommitOptions,
  type SaveOptions,
  type Digest,
} from "./image/store";
