/**
 * What the helper does to /proc (and /sys) after mounting them, as runc does by default: some paths made
 * read-only, others masked. Runs inside the container's mount namespace, after the pivot.
 *
 * Invariants: a path the kernel does not have is skipped (procfs differs between kernels); any other
 * failure throws, so the container is never started half hardened. Masking needs the container's
 * /dev/null, so it runs after /dev is set up.
 */
import * as fs from "node:fs";
import { mount } from "../sys/ns";
import { MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT } from "./flags";

function lstatOrUndefined(path: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Bind-mounts `path` onto itself and remounts that read-only (nosuid, nodev, noexec as /proc is). */
export function makeReadonly(path: string): void {
  if (lstatOrUndefined(path) === undefined) return;
  mount(path, path, null, MS_BIND | MS_REC, null);
  mount(path, path, null, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, null);
}

/** Hides `path`: /dev/null bound over a file, an empty read-only tmpfs over a directory. */
export function maskPath(path: string): void {
  const st = lstatOrUndefined(path);
  if (st === undefined) return;
  if (st.isDirectory()) mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0");
  else mount("/dev/null", path, null, MS_BIND, null);
}
