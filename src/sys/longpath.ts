/**
 * Long paths: reaching an object whose absolute path (layer root + layer-relative path) is too long for
 * one syscall. A path inside the mount may be 4095 bytes by itself, and a tree reached by chdir has no
 * limit at all, so `root + rel` can pass PATH_MAX (4096 with its NUL) where the kernel says ENAMETOOLONG.
 *
 * Invariants:
 * - A short path costs nothing: when `root + rel` is under LONG_PATH bytes, `withPath` hands it over
 *   unchanged, without a syscall or an fd.
 * - Otherwise the parent directory of `rel` is opened below the root fd with openat(O_PATH|O_DIRECTORY|
 *   O_NOFOLLOW), one call per run of components shorter than LONG_PATH bytes, and the object is reached
 *   as `/proc/self/fd/<parent fd>/<name>` (or as `<parent fd>, name` by `inParent`).
 * - Every path handed to a callback is under LONG_PATH bytes, leaving room for a caller to append one
 *   more component (`/.wh.` + a 255-byte name); it is valid only while the callback runs.
 * - Every fd opened here is closed before the function returns or throws. Errors are Node-shaped errno
 *   errors (`code` ENOENT, ENOTDIR, ...), as a syscall on the full path would give.
 * - Components in the middle of a run are resolved as the plain path would resolve them; the union
 *   only ever walks through directories.
 */
import * as fs from "node:fs";
import { openat } from "./libc";

/** Paths of this many bytes or more take the long way (PATH_MAX minus room for one more component). */
export const LONG_PATH = 4096 - 512;

/** asm-generic open flags that Node's `fs.constants` does not export. */
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const OPEN_DIR = O_PATH | O_CLOEXEC | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;

/** `/proc/self/fd/<fd>`: a short path that reaches the directory open as `fd`. */
function procPath(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/**
 * Calls `fn` with a path that reaches `rel` ("" or "/a/b") below the directory open as `rootFd`, whose
 * path is `rootPath`: `rootPath + rel` when that is short, else a path through an fd of `rel`'s parent.
 */
export function withPath<T>(rootFd: number, rootPath: string, rel: string, fn: (path: string) => T): T {
  if (rootPath.length + rel.length < LONG_PATH) return fn(rootPath + rel);
  if (rel === "") return fn(procPath(rootFd));
  return inParent(rootFd, rel, (dirFd, name) => fn(`${procPath(dirFd)}/${name}`));
}

/** Calls `fn` with an fd of `rel`'s parent directory (opened below `rootFd`) and `rel`'s last name. */
export function inParent<T>(rootFd: number, rel: string, fn: (dirFd: number, name: string) => T): T {
  const cut = rel.lastIndexOf("/");
  const dirFd = openDir(rootFd, rel.slice(0, cut));
  try {
    return fn(dirFd, rel.slice(cut + 1));
  } finally {
    if (dirFd !== rootFd) fs.closeSync(dirFd);
  }
}

/** Opens directory `rel` ("" or "/a/b") below `rootFd` as an O_PATH fd; `rootFd` itself for "". */
function openDir(rootFd: number, rel: string): number {
  let fd = rootFd;
  try {
    for (const run of runs(rel)) {
      const prev = fd;
      fd = openat(prev, run, OPEN_DIR);
      if (prev !== rootFd) fs.closeSync(prev);
    }
    return fd;
  } catch (err) {
    if (fd !== rootFd) fs.closeSync(fd);
    throw err;
  }
}

/** `rel`'s components joined into relative paths of fewer than LONG_PATH bytes each. */
function runs(rel: string): string[] {
  const out: string[] = [];
  let run = "";
  for (const name of rel.split("/").slice(1)) {
    if (run !== "" && run.length + 1 + name.length >= LONG_PATH) {
      out.push(run);
      run = "";
    }
    run = run === "" ? name : `${run}/${name}`;
  }
  if (run !== "") out.push(run);
  return out;
}
