/**
 * Extended attributes read relative to a directory fd: getxattrat(2) and listxattrat(2) (Linux 6.13).
 * A layer reaches its objects through its root fd; without these calls it names them as
 * `/proc/self/fd/N/rel`, whose magic link and /proc lookups cost about as much again as the rest of the
 * call (and `ls -l` asks for attributes of every file). Where the calls do not answer (kernels before
 * 6.13, seccomp filters that do not know them: probed once) the l* calls on that /proc path serve.
 *
 * Invariants:
 * - Nothing follows a symlink (AT_SYMLINK_NOFOLLOW). `rel` is never "": the l* calls on a layer's
 *   `/proc/self/fd/N` read the magic link's own attributes, not its directory's, and the layers keep that.
 * - One syscall per read: the value or list lands in a scratch buffer of XATTR_SIZE_MAX bytes (so never
 *   ERANGE) and is copied out. The buffers are the module's, so the functions are not re-entrant (the
 *   union runs on one thread, as stat.ts assumes).
 * - "No such attribute" (ENODATA) is `undefined`, never an error; any other failure throws a Node-shaped
 *   errno error, as libc.ts's calls do.
 */
import { constants } from "node:os";
import { lgetxattrIfAny, llistxattr, splitNames, sysError } from "./libc";
import { koffi, libc, once } from "./native";

/** The calls, bound on first use (see native.ts). */
const c = once(() => ({
  getxattrat: libc().func(
    "long syscall(long number, int dirfd, const void *path, unsigned int flags, const void *name, void *args, size_t size)",
  ),
  listxattrat: libc().func(
    "long syscall(long number, int dirfd, const void *path, unsigned int flags, void *list, size_t size)",
  ),
}));

/** Syscall numbers: the same on every architecture (numbers from 424 on are shared). */
const SYS_GETXATTRAT = 464;
const SYS_LISTXATTRAT = 465;
const AT_SYMLINK_NOFOLLOW = 0x100;
/** XATTR_SIZE_MAX and XATTR_LIST_MAX: no value or name list is longer. */
const XATTR_MAX = 65536;
const ENODATA = constants.errno.ENODATA as number;
const ENOSYS = constants.errno.ENOSYS as number;
const EPERM = constants.errno.EPERM as number;

const value = Buffer.alloc(XATTR_MAX);
/**
 * struct xattr_args { u64 value; u32 size; u32 flags; }: points at `value` (a backing store never moves),
 * filled on first use (koffi tells the address).
 */
const args = once(() => {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(koffi().address(value) as bigint | number), 0);
  b.writeUInt32LE(XATTR_MAX, 8);
  return b;
});
const pathBuf = Buffer.alloc(4096 + 1);
const nameBuf = Buffer.alloc(256 + 1);
/** Whether the *at calls work here: probed on first use (undefined until then). */
let atCalls: boolean | undefined;

/** `s` NUL-terminated in `buf`; false when it does not fit (the caller takes the fallback). */
function put(buf: Buffer, s: string): boolean {
  if (s.length >= buf.length) return false;
  buf.write(s, 0, "latin1");
  buf[s.length] = 0;
  return true;
}

/** The path the l* fallback reaches `rel` below `dirFd` by. */
function procPath(dirFd: number, rel: string): string {
  return `/proc/self/fd/${dirFd}/${rel}`;
}

/** The value of attribute `name` of `rel` ("a/b") below directory `dirFd`; undefined when it has none. */
export function getxattrAt(dirFd: number, rel: string, name: string): Buffer | undefined {
  if (works(dirFd) && put(pathBuf, rel) && put(nameBuf, name)) {
    const got = getxattrat(dirFd);
    if (got >= 0) return Buffer.from(value.subarray(0, got));
    const errno = koffi().errno();
    if (errno === ENODATA) return undefined;
    throw sysError("getxattrat", rel, errno);
  }
  return lgetxattrIfAny(procPath(dirFd, rel), name);
}

/** getxattrat of `pathBuf`'s path and `nameBuf`'s name below `dirFd` into `value`. */
function getxattrat(dirFd: number): number {
  return Number(c().getxattrat(SYS_GETXATTRAT, dirFd, pathBuf, AT_SYMLINK_NOFOLLOW, nameBuf, args(), 16));
}

/**
 * Whether the *at calls answer: the first call asks for an attribute of `dirFd` itself. A kernel before
 * 6.13 says ENOSYS, and a seccomp filter that does not know them may say EPERM; anything an existing
 * call can answer (a value, ENODATA, EOPNOTSUPP) means they work.
 */
function works(dirFd: number): boolean {
  if (atCalls === undefined) {
    put(pathBuf, ".");
    put(nameBuf, "user.unionfs.probe");
    const errno = getxattrat(dirFd) >= 0 ? 0 : koffi().errno();
    atCalls = errno !== ENOSYS && errno !== EPERM;
  }
  return atCalls;
}

/** Names of the extended attributes of `rel` below directory `dirFd` (byte strings). */
export function listxattrAt(dirFd: number, rel: string): string[] {
  if (works(dirFd) && put(pathBuf, rel)) {
    const got = Number(
      c().listxattrat(SYS_LISTXATTRAT, dirFd, pathBuf, AT_SYMLINK_NOFOLLOW, value, XATTR_MAX),
    );
    if (got >= 0) return splitNames(value.subarray(0, got));
    throw sysError("listxattrat", rel);
  }
  return llistxattr(procPath(dirFd, rel));
}
