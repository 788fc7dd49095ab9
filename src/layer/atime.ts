/**
 * Access times in a layer: how its objects are opened so that reading them changes their access times
 * exactly as the union's mount says (the rule is the kernel's; which mode applies is src/unionfs/atime.ts).
 *
 * Invariants:
 * - The layer's own reads (copy-up sources, emptiness checks, listings of read-only layers) never change
 *   an access time: they are opened O_NOATIME (or, where O_NOATIME is refused to a caller who does not
 *   own the file, as they are).
 * - A caller's read (an open for a handle, a READDIR listing, a readlink) goes through a mount whose atime
 *   flags are the policy's, so the kernel applies the mode to every read of it, this process's and the
 *   kernel's own (FUSE passthrough and exec read through a file the kernel opens on the daemon's file's
 *   mount, with the caller's flags: O_NOATIME does not carry over), without touching ctime (futimens
 *   would, and relatime would then count every read): the layer's own mount when its mode for that kind
 *   of object is already the policy's, else a detached clone of it with the policy's flags (open_tree,
 *   mount_setattr: in no mount table, no mountpoint, gone with its fd). A listing that must never count
 *   is read O_NOATIME instead. Without a clone (no CAP_SYS_ADMIN, a mount that cannot be cloned) the
 *   layer's own mount decides, and `noatime` files are opened O_NOATIME.
 */
import * as fs from "node:fs";
import { codeOf } from "../errors";
import { bstr, bytesOf } from "../sys/bytes";
import { closeFd, cloneMountTree, fstatvfsFlags, getdents64, setMountAttrs } from "../sys/libc";

/** What reading an object does to its access time: the kernel's relatime, strictatime or noatime. */
export type AtimeMode = "relatime" | "strictatime" | "noatime";

/** The modes for reading files and for listing directories (`nodiratime` makes the latter noatime). */
export interface AtimePolicy {
  files: AtimeMode;
  dirs: AtimeMode;
}

/** A directory through which a layer's objects are reached: an fd of it and a path to it. */
export interface AccessRoot {
  fd: number;
  root: string;
}

const { O_NOATIME, O_RDONLY, O_DIRECTORY } = fs.constants;
const O_CLOEXEC = 0o2000000;

/** statvfs f_flag bits. */
const ST_NOATIME = 1024;
const ST_NODIRATIME = 2048;
const ST_RELATIME = 4096;

/** MOUNT_ATTR_* bits (mount_setattr). */
const MOUNT_ATTR_NOATIME = 0x10;
const MOUNT_ATTR_STRICTATIME = 0x20;
const MOUNT_ATTR__ATIME = 0x70;
const MOUNT_ATTR_NODIRATIME = 0x80;

/** The modes a mount's statvfs flags give. */
export function policyOfMountFlags(flags: number): AtimePolicy {
  const files: AtimeMode = flags & ST_NOATIME ? "noatime" : flags & ST_RELATIME ? "relatime" : "strictatime";
  return { files, dirs: flags & ST_NODIRATIME ? "noatime" : files };
}

/** The mount_setattr bits (set, clear) that give a mount `policy`. */
export function mountAttrsOf(policy: AtimePolicy): { set: number; clear: number } {
  const atime =
    policy.files === "noatime"
      ? MOUNT_ATTR_NOATIME
      : policy.files === "strictatime"
        ? MOUNT_ATTR_STRICTATIME
        : 0;
  const nodir = policy.dirs === "noatime" && policy.files !== "noatime";
  return {
    set: atime | (nodir ? MOUNT_ATTR_NODIRATIME : 0),
    clear: MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME,
  };
}

/**
 * Where a layer's objects are opened for callers' reads (undefined: O_NOATIME). The kernel reads a
 * passed-through file through a file of its own on the daemon's file's mount, with the caller's open
 * flags (not the daemon's O_NOATIME), so even `noatime` needs a mount with that flag.
 */
export class AccessRoots {
  private clone = -1;
  readonly files: AccessRoot | undefined;
  readonly dirs: AccessRoot | undefined;

  /** `own` is the layer's root as it is mounted; `policy` what callers' reads must do. */
  constructor(own: AccessRoot, policy: AtimePolicy) {
    const host = policyOfMountFlags(fstatvfsFlags(own.fd));
    const filesDiffer = policy.files !== host.files;
    // Directories are never passed through: a listing that must not count is read O_NOATIME.
    const dirsDiffer = policy.dirs !== host.dirs && policy.dirs !== "noatime";
    const other = filesDiffer || dirsDiffer ? this.cloneOf(own, policy) : own;
    const usable = other !== own || policy.files !== "noatime";
    this.files = !filesDiffer ? own : usable ? other : undefined;
    this.dirs = policy.dirs === "noatime" ? undefined : dirsDiffer ? other : own;
  }

  /** A detached clone of `own`'s mount with `policy`'s flags; `own` itself when it cannot be made. */
  private cloneOf(own: AccessRoot, policy: AtimePolicy): AccessRoot {
    try {
      this.clone = cloneMountTree(own.fd);
      const { set, clear } = mountAttrsOf(policy);
      setMountAttrs(this.clone, set, clear);
      return { fd: this.clone, root: `/proc/self/fd/${this.clone}` };
    } catch (err) {
      if (codeOf(err) === undefined) throw err;
      this.close();
      return own;
    }
  }

  close(): void {
    if (this.clone >= 0) closeFd(this.clone);
    this.clone = -1;
  }
}

/** open(2) with O_NOATIME, or without it where it is refused (EPERM: the file is not the caller's). */
export function openNoatime(path: string, flags: number, mode?: number): number {
  try {
    return fs.openSync(bytesOf(path), flags | O_NOATIME, mode);
  } catch (err) {
    if (codeOf(err) !== "EPERM" || flags & O_NOATIME) throw err;
    return fs.openSync(bytesOf(path), flags, mode);
  }
}

/** One raw directory entry: `type` is S_IFMT bits, 0 when the filesystem did not say. */
export interface DirName {
  name: string;
  type: number;
}

const DIRENT_BUFFER = 64 * 1024;
/** What getdents64 reads into: one per thread, used only within one `listNoatime` call. */
let direntBuf: Buffer | undefined;

/**
 * The entries of directory `path` (without "." and ".."), read without changing its access time.
 * `flags` adds open(2) flags: O_NOATIME there makes a directory that refuses it (EPERM) an error instead
 * of a listing that changes its access time.
 */
export function listNoatime(path: string, flags = 0): DirName[] {
  const fd = openNoatime(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | flags);
  try {
    const out: DirName[] = [];
    const buf = (direntBuf ??= Buffer.allocUnsafe(DIRENT_BUFFER));
    for (let n = getdents64(fd, buf); n > 0; n = getdents64(fd, buf)) parseDirents(buf, n, out);
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/** Appends the linux_dirent64 records in `buf[0, n)` to `out` (d_type << 12 is the S_IFMT bits). */
function parseDirents(buf: Buffer, n: number, out: DirName[]): void {
  for (let at = 0; at < n;) {
    const reclen = buf.readUInt16LE(at + 16);
    const type = buf[at + 18] as number;
    const end = buf.indexOf(0, at + 19);
    const name = bstr(buf.subarray(at + 19, end < 0 || end > at + reclen ? at + reclen : end));
    if (name !== "." && name !== "..") out.push({ name, type: type << 12 });
    at += reclen;
  }
}
