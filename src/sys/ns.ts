/**
 * Syscalls for setting up a mount namespace from inside it (the `unionfs-ts run` helper), over koffi.
 *
 * Invariants:
 * - Like libc.ts, every function throws a Node-shaped errno error (`code`, `errno`, `syscall`, `path`) on
 *   failure and never returns -1. Paths and strings are UTF-8 text (they come from the command line).
 * - Nothing here can change the caller's mount namespace (unshare/setns are impossible in a
 *   multi-threaded process); these calls only act inside the namespace the process already is in.
 * - `execve` replaces the process; before it, `prepareExec` undoes what Node did to the process that the
 *   new program would otherwise inherit (ignored SIGPIPE, close-on-exec stdio, stray descriptors).
 * - This module loads libc itself (a second handle to the same library) so libc.ts stays untouched.
 */
import koffi from "koffi";
import { constants } from "node:os";

const libc = koffi.load("libc.so.6");

const c = {
  mount: libc.func(
    "int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)",
  ),
  chroot: libc.func("int chroot(const char *path)"),
  sethostname: libc.func("int sethostname(const char *name, size_t len)"),
  execve: libc.func("int execve(const char *path, const char **argv, const char **envp)"),
  syscall2: libc.func("long syscall(long number, const char *a, const char *b)"),
  signal: libc.func("intptr_t signal(int sig, intptr_t handler)"),
  sigprocmask: libc.func("int sigprocmask(int how, const void *set, void *oldset)"),
  fcntl: libc.func("int fcntl(int fd, int cmd, int arg)"),
  closeRange: libc.func("int close_range(unsigned int first, unsigned int last, int flags)"),
  dup2: libc.func("int dup2(int oldfd, int newfd)"),
  syscall: libc.func("long syscall(long number, ...)"),
};

/** Syscall numbers of the mount API (the same on every architecture since Linux 5.2). */
const SYS_OPEN_TREE = 428;
const SYS_MOVE_MOUNT = 429;
const AT_FDCWD = -100;

/** pivot_root has no glibc wrapper: its syscall number per architecture. */
const SYS_PIVOT_ROOT: Partial<Record<string, number>> = { x64: 155, arm64: 41, riscv64: 41, ia32: 217 };

const codeByErrno = new Map<number, string>(
  Object.entries(constants.errno as Record<string, number>).map(([k, v]) => [v, k]),
);

function sysError(syscall: string, path?: string, errno = koffi.errno()): Error {
  const code = codeByErrno.get(errno) ?? "EIO";
  const where = path === undefined ? "" : ` on '${path}'`;
  const err = new Error(`${code}: ${syscall} failed${where}`) as Error & {
    code: string;
    errno: number;
    syscall: string;
    path?: string;
  };
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}

function check(ret: number | bigint, syscall: string, path?: string): void {
  if (Number(ret) < 0) throw sysError(syscall, path);
}

/** mount(2). `source`, `fstype` and `data` may be null; flags are the MS_* of src/mountns/flags.ts. */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null = null,
): void {
  check(c.mount(source, target, fstype, flags, data) as number, "mount", target);
}

/** pivot_root(2): `newRoot` becomes "/", the old root is moved to `putOld` (which may be `newRoot`). */
export function pivotRoot(newRoot: string, putOld: string): void {
  const nr = SYS_PIVOT_ROOT[process.arch];
  if (nr === undefined) throw sysError("pivot_root", newRoot, constants.errno.ENOSYS as number);
  check(c.syscall2(nr, newRoot, putOld) as number | bigint, "pivot_root", newRoot);
}

export function chroot(path: string): void {
  check(c.chroot(path) as number, "chroot", path);
}

export function sethostname(name: string): void {
  check(c.sethostname(name, Buffer.byteLength(name)) as number, "sethostname");
}

/**
 * Resets what a Node process passes on through execve but a fresh program should not get: every signal
 * back to its default action (Node ignores SIGPIPE; ignored signals survive exec), an empty signal mask,
 * stdin/stdout/stderr without close-on-exec (Node sets it on every inherited descriptor), and every other
 * descriptor close-on-exec, so nothing of the host leaks into the new program.
 */
export function prepareExec(): void {
  const SIG_DFL = 0;
  const SIGKILL = 9;
  const SIGSTOP = 19;
  for (let sig = 1; sig < 32; sig++) if (sig !== SIGKILL && sig !== SIGSTOP) c.signal(sig, SIG_DFL);
  const SIG_SETMASK = 2;
  check(c.sigprocmask(SIG_SETMASK, Buffer.alloc(128), null) as number, "sigprocmask");
  const F_SETFD = 2;
  for (const fd of [0, 1, 2]) c.fcntl(fd, F_SETFD, 0);
  const CLOSE_RANGE_CLOEXEC = 4;
  check(c.closeRange(3, 0xffffffff, CLOSE_RANGE_CLOEXEC) as number, "close_range");
}

/** execve(2): only returns by throwing. */
export function execve(path: string, argv: readonly string[], envp: readonly string[]): never {
  c.execve(path, [...argv, null], [...envp, null]);
  throw sysError("execve", path);
}

/**
 * A detached bind mount of `path` (open_tree(2) with OPEN_TREE_CLONE): a file or directory of this mount
 * namespace, kept as a descriptor (close-on-exec) until `moveMount` attaches it somewhere.
 */
export function openTree(path: string): number {
  const OPEN_TREE_CLONE = 1;
  const OPEN_TREE_CLOEXEC = 0o2000000; // O_CLOEXEC
  const flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
  const ret = Number(c.syscall(SYS_OPEN_TREE, "int", AT_FDCWD, "const char *", path, "unsigned int", flags));
  check(ret, "open_tree", path);
  return ret;
}

/** move_mount(2): attaches the detached mount open as `treeFd` at `target` (which must exist). */
export function moveMount(treeFd: number, target: string): void {
  const MOVE_MOUNT_F_EMPTY_PATH = 4;
  const args = ["int", treeFd, "const char *", "", "int", AT_FDCWD, "const char *", target];
  check(
    Number(c.syscall(SYS_MOVE_MOUNT, ...args, "unsigned int", MOVE_MOUNT_F_EMPTY_PATH)),
    "move_mount",
    target,
  );
}

/** dup2(2): `newFd` becomes a copy of `oldFd` (without close-on-exec). */
export function dup2(oldFd: number, newFd: number): void {
  check(c.dup2(oldFd, newFd) as number, "dup2");
}
