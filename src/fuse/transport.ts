/**
 * The transport interface: what serves a union to the kernel. Implementations live in src/fuse/ only.
 *
 * Invariants: `mount` resolves only once the mount answers requests (INIT done) and rejects, leaving
 * nothing mounted, when it cannot get there. `done` resolves when serving has stopped for good (the
 * mount is gone); after it resolves no thread of the transport is left blocked on the device. The
 * union is built from `configOf(req)`: the atime policy comes from the mount's flags.
 */
import { atimePolicyOf } from "../unionfs/atime";
import type { UnionConfig } from "../unionfs/config";

/** Generic VFS mount flags: given to the kernel mount as they come (later ones win, as with mount(8)). */
/** The mount type of every unionfs-ts mount (`fuse.` and the FUSE subtype), as the mount table shows it. */
export const FS_SUBTYPE = "unionfs-ts";
export const FS_TYPE = `fuse.${FS_SUBTYPE}`;

export const VFS_FLAGS = new Set([
  "ro",
  "rw",
  "suid",
  "nosuid",
  "dev",
  "nodev",
  "exec",
  "noexec",
  "atime",
  "noatime",
  "diratime",
  "nodiratime",
  "relatime",
  "norelatime",
  "strictatime",
  "nostrictatime",
  "lazytime",
  "nolazytime",
  "sync",
  "async",
  "dirsync",
]);

export interface MountRequest {
  /** Absolute path of the mountpoint. */
  mountpoint: string;
  config: UnionConfig;
  /** Source shown in the mount table (the branch list). */
  fsname: string;
  /**
   * Generic VFS mount flags for the kernel mount, in the order given (`ro`, `nosuid`, `nodev`, `noexec`,
   * `noatime`, `strictatime`, `sync`, …: `VFS_FLAGS`); the kernel enforces them.
   */
  flags?: readonly string[];
  /** Log each request and reply. */
  debug?: boolean;
  /** Append the daemon's log to this file (timestamped lines) instead of stderr. */
  logFile?: string;
  /**
   * Test seam: build the filesystem from this module's export instead of the union core.
   * The export is called with `config` and must return `UnionOps`.
   */
  factory?: { module: string; name: string };
  /**
   * Kernel transport: serve on this process's one shared serving thread with its other such mounts
   * (a process serving many, cli/shared), instead of on a thread of its own. Not for io_uring mounts.
   */
  sharedThread?: boolean;
}

/** The config to build the union from: access times as the mount's flags ask, unless it says. */
export function configOf(req: MountRequest): UnionConfig {
  return { ...req.config, atime: req.config.atime ?? atimePolicyOf(req.flags ?? []) };
}

export interface MountedFs {
  readonly mountpoint: string;
  /** How requests reach the daemon ("/dev/fuse", "io_uring (…)"), where the transport knows. */
  readonly channel?: string | undefined;
  /** Resolves when the mount is gone and the transport has stopped. */
  readonly done: Promise<void>;
  /** Unmounts (lazily if busy) and waits for `done`. */
  unmount(): Promise<void>;
}

export interface Transport {
  readonly name: string;
  mount(req: MountRequest): Promise<MountedFs>;
}
