/**
 * FUSE kernel protocol constants (linux/fuse.h, protocol 7.38) and this transport's tunables.
 *
 * Invariants: numbers here are copied from the kernel header and never computed; everything the rest of
 * src/fuse/kernel needs to know about the wire lives here or in codec.ts. The transport implements minor
 * version PROTO_MINOR and refuses kernels older than MIN_MINOR.
 */

export const PROTO_MAJOR = 7;
/** The minor version whose request and reply layouts this transport implements. */
export const PROTO_MINOR = 38;
/** Oldest kernel minor accepted: from 7.12 on, every request struct has its current layout. */
export const MIN_MINOR = 12;

export const ROOT_ID = 1;

/** How long the kernel may cache names and attributes (seconds). */
export const ENTRY_TIMEOUT_S = 60;
export const ATTR_TIMEOUT_S = 60;

/** Largest WRITE payload (and READ size) asked for: 256 pages. */
export const MAX_PAGES = 256;
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
  MAX_PAGES: 1 << 22,
  INIT_EXT: 1 << 30,
} as const;

/** The flags this transport asks for; each is granted only when the kernel offers it. */
export const WANTED_INIT_FLAGS =
  Init.ASYNC_READ |
  Init.BIG_WRITES |
  Init.ATOMIC_O_TRUNC |
  Init.PARALLEL_DIROPS |
  Init.MAX_PAGES |
  Init.DO_READDIRPLUS |
  Init.READDIRPLUS_AUTO |
  Init.INIT_EXT;
/** Nothing from flags2 (security contexts, DAX, expire-only) is wanted yet. */
export const WANTED_INIT_FLAGS2 = 0;

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
} as const;

export const GETATTR_FH = 1 << 0;

/** fuse_open_out.open_flags */
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_NOFLUSH = 1 << 5;

/** Notification codes (sent with unique 0, in the error field). */
export const NOTIFY_INVAL_INODE = 2;
export const FSYNC_FDATASYNC = 1 << 0;

/** Struct sizes (bytes) at protocol 7.38. */
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
