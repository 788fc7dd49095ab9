/**
 * `unionfs-ts mount`: validate, then serve in the foreground (-f) or in a detached daemon.
 *
 * Invariants:
 * - Everything the user can get wrong is checked before anything is created or mounted: here, or, for
 *   a plain command line (shared/detect.ts), only in the daemon, which main.ts starts at once and which
 *   then prints the warnings and the error line itself (daemon.ts).
 * - Without -f the command exits 0 only after the daemon reports the mount live, and otherwise exits
 *   non-zero with the daemon's own error line. The daemon never keeps the caller's stdout/stderr open
 *   once it is ready, so a caller capturing them (a container engine) is not held up.
 */
import { checkBranches, checkMountpoint, checkWorkdir } from "../unionfs/branches";
import { cleanDeadMount, selectTransport, type MountRequest } from "../fuse";
import { buildMountOptions, type MountOptions } from "./options";
import { daemonize, daemonRole } from "./daemon";
import { serve } from "./serve";

export interface MountFlags {
  foreground?: boolean;
  options: string[];
  verbose?: boolean;
  /** auto (default), kernel or fuse-native. */
  transport?: string;
}

/**
 * The mount a command line asks for, with everything the user can get wrong checked (relative paths
 * resolved against `cwd`); a dead mount left at the mountpoint is removed, and a warning says so.
 */
export function validateMount(positionals: string[], options: string[], cwd: string): MountOptions {
  const m = buildMountOptions(positionals, options, cwd);
  checkBranches(m.config.branches);
  checkWorkdir(m.config, m.mountpoint);
  const cleaned = cleanDeadMount(m.mountpoint);
  checkMountpoint(m.mountpoint, m.config);
  if (cleaned !== undefined) m.warnings.push(cleaned);
  return m;
}

export async function mountCommand(positionals: string[], flags: MountFlags): Promise<number> {
  const m = validateMount(positionals, flags.options, process.cwd());
  selectTransport(flags.transport ?? "auto"); // fails here, before any daemon, when it cannot serve
  const { daemon, warns } = daemonRole();
  if (warns) for (const w of m.warnings) process.stderr.write(`unionfs-ts: warning: ${w}\n`);
  // A debug log needs somewhere to go: without log=FILE it is stderr, so -d implies -f (as fuse-overlayfs).
  if (flags.foreground || daemon || (m.debug && m.logFile === undefined)) {
    return serve({
      ...mountRequestOf(m),
      ...(m.pidFile === undefined ? {} : { pidFile: m.pidFile }),
      verbose: flags.verbose === true,
      transport: flags.transport,
    });
  }
  return daemonize();
}

/** What the transport is asked to mount for a checked command line. */
export function mountRequestOf(m: MountOptions): MountRequest & { debug: boolean } {
  return {
    mountpoint: m.mountpoint,
    config: m.config,
    fsname: fsnameOf(m.fsname),
    flags: m.flags,
    debug: m.debug,
    ...(m.logFile === undefined ? {} : { logFile: m.logFile }),
  };
}

/** The mount source shown in the mount table: the branch list, shortened past the kernel's limits. */
export function fsnameOf(branchList: string): string {
  const MAX = 512;
  if (Buffer.byteLength(branchList) <= MAX) return branchList;
  const n = branchList.split(":").length;
  return `${branchList.slice(0, MAX - 32).replace(/:[^:]*$/, "")}:...(${n} branches)`;
}
