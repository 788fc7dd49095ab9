/**
 * The detached daemon a background mount runs in: this very command line re-run with
 * UNIONFS_TS_DAEMON=1, and the wait for its "ready" or its death.
 *
 * Invariants:
 * - Loads nothing but node:child_process, so a plain mount command line (shared/detect.ts) can start its
 *   daemon before any mount code is loaded here: the daemon then checks everything itself, prints the
 *   warnings (CHECKS_ENV), and its error line and status are the command's.
 * - Exits 0 only once the daemon says "ready"; otherwise its status (1 if it had none), with its stderr
 *   passed on as it comes, and a line of its own where the daemon's death said nothing (a signal, exit 0). Once ready, the daemon's stderr is let go: a caller reading ours to the end
 *   is not held up.
 */
import { spawn } from "node:child_process";
import { daemonExecArgv } from "./node-flags";

export const DAEMON_ENV = "UNIONFS_TS_DAEMON";
/** Set for a daemon that checks its command line itself: it prints the warnings the command would. */
export const CHECKS_ENV = "UNIONFS_TS_DAEMON_CHECKS";

/** Whether this process is a mount's daemon, and whether it prints the warnings itself. */
export function daemonRole(env: NodeJS.ProcessEnv = process.env): { daemon: boolean; warns: boolean } {
  const daemon = env[DAEMON_ENV] === "1";
  return { daemon, warns: !daemon || env[CHECKS_ENV] === "1" };
}

/**
 * Re-runs this very command as a detached daemon and waits for "ready" or for its death; `checks`:
 * nothing was checked here (the daemon checks and warns).
 */
export function daemonize(checks = false): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env, [DAEMON_ENV]: "1" };
  if (checks) env[CHECKS_ENV] = "1";
  else delete env[CHECKS_ENV];
  const child = spawn(process.execPath, [...daemonExecArgv(process.execArgv), ...process.argv.slice(1)], {
    detached: true,
    env,
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
      else if (code === 0) process.stderr.write("unionfs-ts: the daemon exited before the mount was ready\n");
      resolve(code === 0 || code === null ? 1 : code);
    });
  });
}
