/**
 * Serving a mount in this process until it is unmounted.
 *
 * Invariants: SIGINT, SIGTERM and SIGHUP unmount (lazily when busy) and let the transport finish, also
 * when they arrive while the mount is still being set up (the mount is visible before INIT is done); an
 * uncaught error detaches the mount and aborts the FUSE connection before exiting, so no process is
 * ever left blocked on a dead mount and no wedged mount is left behind. With a log file every line of
 * the daemon goes there (timestamped) once the mount is live; a pid file exists exactly while it serves.
 */
import { abortMount, chooseTransport, type MountedFs } from "../fuse";
import type { UnionConfig } from "../unionfs/config";
import * as fs from "node:fs";
import { logLine, logTo } from "../fuse/kernel/log";

export interface ServeRequest {
  mountpoint: string;
  config: UnionConfig;
  fsname: string;
  /** Generic VFS mount flags (see MountRequest.flags). */
  flags?: readonly string[];
  debug: boolean;
  verbose: boolean;
  /** auto (default), kernel or fuse-native. */
  transport?: string;
  /** The daemon's log file (see fuse/kernel/log.ts); stderr when absent. */
  logFile?: string;
  /** Written with the daemon's pid once the mount is live; removed when serving ends. */
  pidFile?: string;
}

/** The pid file: written whole (a reader never sees half), replaced if stale. */
export function writePidFile(file: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${process.pid}\n`);
  fs.renameSync(tmp, file);
}

export async function serve(req: ServeRequest): Promise<number> {
  const { transport, reason } = chooseTransport(req.transport ?? "auto");
  const state: { m?: MountedFs; stopRequested: boolean } = { stopRequested: false };
  const stop = (): void => {
    if (state.m === undefined) {
      state.stopRequested = true;
      return;
    }
    state.m.unmount().catch((err: unknown) => logLine(`unmount failed: ${String(err)}`, "error"));
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, stop);
  const m = await transport.mount({
    mountpoint: req.mountpoint,
    config: req.config,
    fsname: req.fsname,
    flags: req.flags,
    debug: req.debug,
    ...(req.logFile === undefined ? {} : { logFile: req.logFile }),
  });
  state.m = m;
  if (req.logFile !== undefined) logTo(req.logFile);
  if (state.stopRequested) stop();
  // Once ready, the caller may close our stderr; writing to it must not kill the daemon.
  process.stderr.on("error", () => undefined);
  process.on("uncaughtException", (err) => {
    logLine(`fatal: ${err.stack ?? String(err)}`, "error");
    abortMount(req.mountpoint);
    process.exitCode = 1;
  });
  const over = m.channel === undefined ? "" : ` over ${m.channel}`;
  if (req.config.ioUring === true && transport.name !== "kernel")
    logLine(`io_uring is for the kernel transport; ${transport.name} ignores it`, "warning");
  const serving = `serving ${req.mountpoint} (transport: ${transport.name}${over}, ${reason}) as pid ${process.pid}`;
  if (req.verbose || req.logFile !== undefined) logLine(serving, "info");
  if (req.pidFile !== undefined) writePidFile(req.pidFile);
  if (process.send) {
    process.send("ready");
    process.disconnect();
  }
  try {
    await m.done;
  } finally {
    if (req.pidFile !== undefined) fs.rmSync(req.pidFile, { force: true });
  }
  if (req.logFile !== undefined) logLine(`${req.mountpoint} is unmounted; exiting`, "info");
  return 0;
}
