/**
 * The lifecycle every mount of this process shares, whatever its transport: the set of live mounts, the
 * exit hook that aborts them, aborting by mountpoint, and the unmount sequence.
 *
 * Invariants:
 * - A mount is live from the moment it is mounted (`track`) until its serving ended (`untrack`).
 * - If the process exits while mounts are live, each is aborted (its connection, then a lazy detach),
 *   so nothing is left wedged: one exit hook for all of them, installed with the first.
 * - `abortMount` and `abortAllMounts` are synchronous and touch no path inside a mount: crash and
 *   signal handlers may call them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FsError } from "../errors";
import { isMounted, isTopMount, mountError, runCommand, unmountCommand } from "./control";

/** What the lifecycle needs of a mount. */
export interface LiveMount {
  /** The canonical mountpoint (absolute, no symlinks). */
  readonly mountpoint: string;
  /** Synchronous emergency stop: aborts the connection and detaches the mount. */
  abort(): void;
}

/** Live mounts, each with the log its transport writes to. */
const live = new Map<LiveMount, (line: string) => void>();
let exitHookInstalled = false;

/** `m` is mounted and served; `log` says why it is aborted if the process exits first. */
export function track(m: LiveMount, log: (line: string) => void): void {
  live.set(m, log);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    const logs = new Map<(line: string) => void, number>();
    for (const l of live.values()) logs.set(l, (logs.get(l) ?? 0) + 1);
    for (const [l, n] of logs) l(`process exiting with ${n} mount(s) still served: aborting them`);
    abortAllMounts();
  });
}

/** `m` is no longer served. */
export function untrack(m: LiveMount): void {
  live.delete(m);
}

/** Aborts every mount of this process that is still serving (for crash and signal handlers). */
export function abortAllMounts(): void {
  for (const m of [...live.keys()]) m.abort();
}

/**
 * The absolute path with its parent resolved, without touching the path itself (it may be a dead or
 * wedged mount).
 */
export function canonicalMountpoint(p: string): string {
  const abs = path.resolve(p);
  if (abs === "/") return abs;
  try {
    return path.join(fs.realpathSync(path.dirname(abs)), path.basename(abs));
  } catch {
    return abs;
  }
}

/** Aborts the mount(s) this process serves at `mountpoint`; returns how many. */
export function abortMount(mountpoint: string): number {
  const abs = path.resolve(mountpoint);
  const real = canonicalMountpoint(mountpoint);
  const targets = [...live.keys()].filter((m) => m.mountpoint === real || m.mountpoint === abs);
  for (const m of targets) m.abort();
  return targets.length;
}

/**
 * Unmounts the mount `dev` at `mountpoint` if it is still there: EBUSY when another mount is stacked on
 * it; plainly, else (busy with open files) lazily, so it goes once its last file is closed.
 */
export async function unmountAt(mountpoint: string, dev: string): Promise<void> {
  if (dev === "" || !isMounted(mountpoint, dev)) return;
  if (!isTopMount(mountpoint, dev)) throw new FsError("EBUSY", `another mount is stacked on ${mountpoint}`);
  const [cmd, args] = unmountCommand(mountpoint, false);
  const plain = await runCommand(cmd, args);
  if (plain.ok || !isMounted(mountpoint, dev)) return;
  const [lcmd, largs] = unmountCommand(mountpoint, true);
  const lazy = await runCommand(lcmd, largs);
  if (!lazy.ok && isMounted(mountpoint, dev)) throw mountError(lazy.stderr);
}
