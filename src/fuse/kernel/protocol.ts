/**
 * FUSE kernel protocol constants (linux/fuse.h, protocol 7.40) and this transport's tunables.
 *
 * Invariants: numbers here are copied from the kernel header and never computed; everything the rest of
 * src/fuse/kernel needs to know about the wire lives here or in codec.ts. The transport implements minor
 * version PROTO_MINOR and refuses kernels older than MIN_MINOR.
 */

export const PROTO_MAJOR = 7;
/** The minor version whose request and reply layouts this transport implements. */
export const PROTO_MINOR = 40;
/** Oldest kernel minor accepted: from 7.12 on, every request struct has its current layout. */
export const MIN_MINOR = 12;

export const ROOT_ID = 1;

/**
 * How long the kernel may cache names and attributes (seconds) unless `timeout=` says otherwise: a day.
 * Every change to the union goes through the mount (layers are assumed not to change behind it), so
 * the kernel's entries stay right; what the union changes on its own it invalidates explicitly.
 */
export const ENTRY_TIMEOUT_S = 86_400;
export const ATTR_TIMEOUT_S = 86_400;

/**
 * Largest WRITE payload (and READ size) asked for: 255 pages, not 256, so that a READ reply spliced from
 * the file (splice.ts) fits a pipe of 1 MiB, the most an unprivileged process (or root without
 * CAP_SYS_RESOURCE) may have: one pipe buffer per page of data, plus one for the reply's header.
 */
export const MAX_PAGES = 255;
export const MAX_WRITE = MAX_PAGES * 4096;
/** Read buffer: one request of max_write bytes plus its headers. */
export const READ_BUFFER_SIZE = MAX_WRITE + 4096;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
  TMPFILE: 51,
  STATX: 52,
} as const;

const opNames = new Map<number, string>(Object.entries(Op).map(([name, code]) => [code, name]));

/** "LOOKUP", or "OP<n>" for an opcode this file does not name. */
export function opName(opcode: number): string {
  return opNames.get(opcode) ?? `OP${opcode}`;
}

/** INIT flags (fuse_init_in/out.flags; bits 32.. travel in flags2). */
export const Init = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  FLOCK_LOCKS: 1 << 10,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  HANDLE_KILLPRIV: 1 << 19,
  /** The kernel enforces ACLs (read with GETXATTR) and leaves the umask to the VFS/FUSE (SB_POSIXACL). */
  POSIX_ACL: 1 << 20,
  MAX_PAGES: 1 << 22,
  /** The kernel takes ENOSYS from OPENDIR as "never send OPENDIR/RELEASEDIR" and caches listings. */
  NO_OPENDIR_SUPPORT: 1 << 24,
  /**
   * The daemon clears set-id bits on write, truncate and O_TRUNC opens when the kernel says so, and the
   * kernel may remember that a file has no security.capability (SB_NOSEC) instead of asking every write.
   */
  HANDLE_KILLPRIV_V2: 1 << 28,
  /** SETXATTR carries setxattr_flags: ACL_KILL_SGID when a non-member sets an access ACL. */
  SETXATTR_EXT: 1 << 29,
  INIT_EXT: 1 << 30,
} as const;

/** The flags this transport asks for; each is granted only when the kernel offers it. */
export const WANTED_INIT_FLAGS =
  Init.ASYNC_READ |
  Init.BIG_WRITES |
  Init.ATOMIC_O_TRUNC |
  Init.PARALLEL_DIROPS |
  Init.MAX_PAGES |
  Init.HANDLE_KILLPRIV_V2 |
  Init.SETXATTR_EXT |
  Init.DO_READDIRPLUS |
  Init.READDIRPLUS_AUTO |
  Init.POSIX_ACL |
  Init.NO_OPENDIR_SUPPORT |
  // File handles survive the kernel forgetting an inode: it looks up "." and ".." (export.ts).
  Init.EXPORT_SUPPORT |
  // The umask arrives unapplied with the unmasked mode: the core applies it unless a default ACL rules.
  Init.DONT_MASK |
  Init.INIT_EXT;
/** INIT flags2 bits (flags bit 32 + n is bit n here). */
export const Init2 = {
  /** 7.39: a FOPEN_DIRECT_IO file may still be mapped shared (through the page cache). */
  DIRECT_IO_ALLOW_MMAP: 1 << (36 - 32),
  /** 7.40: open replies may name a backing file the kernel reads and writes directly. */
  PASSTHROUGH: 1 << (37 - 32),
  /** 7.42: requests may come through io_uring (fuse-io_uring.rst; root's enable_uring switch). */
  OVER_IO_URING: 1 << (41 - 32),
} as const;

/** flags2 bits asked for (security contexts, DAX and expire-only are not wanted). */
export const WANTED_INIT_FLAGS2 = Init2.PASSTHROUGH | Init2.DIRECT_IO_ALLOW_MMAP | Init2.OVER_IO_URING;

/**
 * init_out.max_stack_depth with passthrough: backing files must live on a filesystem of stack depth 0
 * (not on overlayfs or another FUSE mount), and this mount counts as depth 1, so kernel overlayfs can
 * still use it as a layer.
 */
export const PASSTHROUGH_STACK_DEPTH = 1;

/** /dev/fuse ioctls (7.40): register a backing file (struct fuse_backing_map) / drop it (u32 id). */
export const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
export const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

/** fuse_setattr_in.valid bits. */
export const Fattr = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  /** HANDLE_KILLPRIV_V2: the change (truncate, chown) must also clear set-id bits. */
  KILL_SUIDGID: 1 << 11,
} as const;

/** fuse_write_in.write_flags: clear set-id bits with this write (HANDLE_KILLPRIV_V2). */
export const WRITE_KILL_SUIDGID = 1 << 2;
/** fuse_setxattr_in.setxattr_flags (SETXATTR_EXT): clear set-gid along with setting an access ACL. */
export const SETXATTR_ACL_KILL_SGID = 1 << 0;
/** fuse_open_in/fuse_create_in.open_flags: clear set-id bits with this O_TRUNC open. */
export const OPEN_KILL_SUIDGID = 1 << 0;

export const GETATTR_FH = 1 << 0;

/** fuse_open_out.open_flags */
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_NOFLUSH = 1 << 5;
/** 7.40: read/write/mmap of this open file go to the backing file named by fuse_open_out.backing_id. */
export const FOPEN_PASSTHROUGH = 1 << 7;

/** Notification codes (sent with unique 0, in the error field). */
export const NOTIFY_INVAL_INODE = 2;
export const FSYNC_FDATASYNC = 1 << 0;

/** Struct sizes (bytes) at protocol 7.40. */
export const Size = {
  IN_HEADER: 40,
  OUT_HEADER: 16,
  ATTR: 88,
  ENTRY_OUT: 128,
  ATTR_OUT: 104,
  OPEN_OUT: 16,
  INIT_OUT: 64,
  /** init_out before 7.23 (no max_pages, map_alignment, flags2). */
  INIT_OUT_COMPAT_22: 24,
  STATFS_OUT: 80,
  WRITE_OUT: 8,
  GETXATTR_OUT: 8,
  LSEEK_OUT: 8,
  DIRENT_NAME_OFFSET: 24,
  DIRENTPLUS_NAME_OFFSET: 152,
} as const;

/** dirent type of an entry whose type is unknown. */
export const DT_UNKNOWN = 0;
export const DT_DIR = 4;
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
