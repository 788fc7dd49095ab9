/**
 * Serving a mount in this process until it is unmounted.
 *
 * Invariants: SIGINT, SIGTERM and SIGHUP unmount (lazily when busy) and let the transport finish, also
 * when they arrive while the mount is still being set up (the mount is visible before INIT is done); an
 * uncaught error detaches the mount and aborts the FUSE connection before exiting, so no process is
 * ever left blocked on a dead mount and no wedged mount is left behind.
 */
import { abortMount, abortNativeMount, chooseTransport, type MountedFs } from "../fuse";
import type { UnionConfig } from "../unionfs/config";

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
}

export async function serve(req: ServeRequest): Promise<number> {
  const { transport, reason } = chooseTransport(req.transport ?? "auto");
  const state: { m?: MountedFs; stopRequested: boolean } = { stopRequested: false };
  const stop = (): void => {
    if (state.m === undefined) {
      state.stopRequested = true;
      return;
    }
    state.m
      .unmount()
      .catch((err: unknown) => process.stderr.write(`unionfs-ts: unmount failed: ${String(err)}\n`));
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, stop);
  const m = await transport.mount({
    mountpoint: req.mountpoint,
    config: req.config,
    fsname: req.fsname,
    flags: req.flags,
    debug: req.debug,
  });
  state.m = m;
  if (state.stopRequested) stop();
  // Once ready, the caller may close our stderr; writing to it must not kill the daemon.
  process.stderr.on("error", () => undefined);
  process.on("uncaughtException", (err) => {
    process.stderr.write(`unionfs-ts: fatal: ${err.stack ?? String(err)}\n`);
    abortMount(req.mountpoint);
    abortNativeMount(req.mountpoint);
    process.exitCode = 1;
  });
  if (req.verbose)
    process.stderr.write(`unionfs-ts: serving ${req.mountpoint} (transport: ${transport.name}, ${reason})\n`);
  if (process.send) {
    process.send("ready");
    process.disconnect();
  }
  await m.done;
  return 0;
}
