/**
 * The caller's terminal inside the container, as LXC gives it: bind-mounted on /dev/console, and every
 * one of stdin/stdout/stderr that was that terminal reopened from there. The container's /dev/pts is a
 * new devpts instance without the caller's pty, so a descriptor still naming the host's /dev/pts/N makes
 * `tty` say "not a tty"; reopened from /dev/console, `ttyname` finds it. No other host pty is visible.
 *
 * Invariants:
 * - `grabTty` runs before the pivot (the host's /dev is still reachable in the new mount namespace) and
 *   only keeps a detached mount of the terminal (open_tree), in no mount table; `attachConsole` runs after
 *   /dev is set up and does nothing when nothing was grabbed (no terminal: pipes, files, /dev/null).
 * - Only descriptors 0-2 that are the same terminal (the same device file) are replaced; the terminal stays
 *   the session's controlling terminal (the same tty, another path).
 */
import * as fs from "node:fs";
import * as tty from "node:tty";
import { dup2, moveMount, openTree } from "../sys/ns";

let grabbed: { treeFd: number; id: string } | undefined;

/** The terminal open as `fd` (its device file's st_dev:st_ino), or undefined when it is not one. */
function ttyId(fd: number): string | undefined {
  try {
    if (!tty.isatty(fd)) return undefined;
    const st = fs.fstatSync(fd);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Keeps a detached bind mount of the terminal on stdin, stdout or stderr (the first that is one); returns
 * its host path, or undefined when none is a terminal this mount namespace can reach.
 */
export function grabTty(): string | undefined {
  for (const fd of [0, 1, 2]) {
    const id = ttyId(fd);
    if (id === undefined) continue;
    let path: string;
    try {
      // The same file, not merely the same device number: another devpts instance has a pts/N too.
      path = fs.readlinkSync(`/proc/self/fd/${fd}`);
      const st = fs.statSync(path);
      if (`${st.dev}:${st.ino}` !== id) return undefined;
    } catch {
      return undefined;
    }
    grabbed = { treeFd: openTree(path), id };
    return path;
  }
  return undefined;
}

/** Puts the grabbed terminal on `target` (created as an empty file) and reopens descriptors 0-2 from it. */
export function attachConsole(target: string): void {
  if (grabbed === undefined) return;
  const { treeFd, id } = grabbed;
  grabbed = undefined;
  fs.writeFileSync(target, "", { mode: 0o600 });
  moveMount(treeFd, target);
  fs.closeSync(treeFd);
  const fd = fs.openSync(target, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  for (const n of [0, 1, 2]) if (n !== fd && ttyId(n) === id) dup2(fd, n);
  if (fd > 2) fs.closeSync(fd);
}
