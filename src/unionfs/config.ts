/**
 * The serialisable description of a union: branches top first, where copies are built, whiteout format.
 *
 * Invariants: a `UnionConfig` is plain data (it crosses into the FUSE worker thread via `workerData`);
 * paths in it are absolute UTF-8 strings; at most one branch is writable and, if there is one, it is the
 * top branch (index 0); at most `MAX_READONLY_BRANCHES` read-only branches, plus the writable one
 * (Docker's overlay2 and kernel overlayfs stack 128 lower layers under an upper one).
 */
import type { AtimePolicy } from "../layer/atime";
import type { XattrNamespace } from "../sys/xattrns";
import type { WhiteoutFormat } from "../whiteout";

export type { WhiteoutFormat };

export const MAX_READONLY_BRANCHES = 128;
/** The most branches a union has: the read-only ones and one writable. */
export const MAX_BRANCHES = MAX_READONLY_BRANCHES + 1;

/** aufs branch modes: rw = writable; ro and ro+wh = read-only, whiteouts honoured; rr = read-only. */
export type BranchMode = "rw" | "ro" | "ro+wh" | "rr";

export interface BranchSpec {
  path: string;
  mode: BranchMode;
}

/**
 * FUSE passthrough (the kernel reads and writes a backing file itself): `auto` for files that live in the
 * writable branch (or in a union without one), `lower` also for read-only opens of lower files (faster
 * reads, but a descriptor opened before a copy-up keeps reading the lower file), `off` never.
 */
export type PassthroughMode = "auto" | "lower" | "off";

export interface IdRangeSpec {
  disk: number;
  shown: number;
  count: number;
}

export interface UnionConfig {
  /** Top first. */
  branches: BranchSpec[];
  /** Where copy-ups are built before being renamed into place; default: inside the rw branch. */
  workdir?: string;
  /** How whiteouts and opaque markers are written into the writable branch (src/whiteout). */
  whiteout: WhiteoutFormat;
  /** uid/gid mapping between disk and the mount (fuse-overlayfs uidmapping/gidmapping). */
  uidMap?: IdRangeSpec[];
  gidMap?: IdRangeSpec[];
  /** Show every file as owned by this uid/gid. */
  squashUid?: number;
  squashGid?: number;
  /** Extended attributes are not supported through the mount (EOPNOTSUPP). */
  noXattrs?: boolean;
  /** fsync and fdatasync return at once without syncing (fsync=0; for volatile containers). */
  noFsync?: boolean;
  /** Default `auto`. */
  passthrough?: PassthroughMode;
  /**
   * Take requests through FUSE over io_uring when the kernel offers it (`io_uring`; the fuse module's
   * enable_uring switch must be on); default off: /dev/fuse. The core ignores it (a transport matter).
   */
  ioUring?: boolean;
  /** How long the kernel may cache entries and attributes, in seconds (`timeout=`); default a day. */
  cacheTimeout?: number;
  /**
   * What callers' reads do to access times in the writable branch (the mount's `relatime`,
   * `strictatime`, `noatime`, `nodiratime`, `ro`: see atime.ts `atimePolicyOf`); default relatime.
   */
  atime?: AtimePolicy;
  /**
   * The xattr namespace of the union's private markers in the writable branch (`trusted.overlay.opaque`
   * or `user.overlay.opaque`, …); default: `trusted` when the daemon has CAP_SYS_ADMIN in the initial
   * user namespace, else `user` (sys/xattrns.ts). Both are read in every branch either way.
   */
  xattrs?: XattrNamespace;
}
