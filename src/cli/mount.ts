/**
 * `unionfs-ts mount`: validate, then serve in the foreground (-f) or in a detached daemon.
 *
 * Invariants:
 * - Everything the user can get wrong is checked before anything is created or mounted.
 * - Without -f the command exits 0 only after the daemon reports the mount live, and otherwise exits
 *   non-zero with the daemon's own error line. The daemon never keeps the caller's stdout/stderr open
 *   once it is ready, so a caller capturing them (a container engine) is not held up.
 */
import { spawn } from "node:child_process";
import { checkBranches, checkMountpoint, checkWorkdir } from "../unionfs/branches";
import { cleanDeadMount, selectTransport, type MountRequest } from "../fuse";
import { buildMountOptions, type MountOptions } from "./options";
import { serve } from "./serve";

export interface MountFlags {
  foreground?: boolean;
  options: string[];
  verbose?: boolean;
  /** auto (default), kernel or fuse-native. */
  transport?: string;
}

const DAEMON_ENV = "UNIONFS_TS_DAEMON";

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
  const daemon = process.env[DAEMON_ENV] === "1";
  if (!daemon) for (const w of m.warnings) process.stderr.write(`unionfs-ts: warning: ${w}\n`);
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

/** Re-runs this very command as a detached daemon and waits for "ready" or for its death. */
function daemonize(): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    env: { ...process.env, [DAEMON_ENV]: "1" },
    stdio: ["ignore", "ignore", "pipe", "ipc"],
  });
  return new Promise((resolve) => {
    let ready = false;
    child.stderr?.on("data", (d: Buffer) => process.stderr.write(d));
    child.on("message", (msg) => {
      if (msg !== "ready") return;
      ready = true;
      child.stderr?.destroy();
      child.disconnect();
      child.unref();
      resolve(0);
    });
    child.on("close", (code, signal) => {
      if (ready) return;
      if (signal)
        process.stderr.write(`unionfs-ts: the daemon was killed by ${signal} before the mount was ready\n`);
      resolve(code === 0 || code === null ? 1 : code);
    });
  });
}
