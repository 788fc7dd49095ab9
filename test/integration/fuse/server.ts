/**
 * Runs serve-fixture in a child process for the integration tests and always takes it down again.
 *
 * Invariants: the FUSE server never runs in the mocha process; waiting is polling with a deadline
 * (test/helpers/mounts.ts `waitFor`), never a fixed sleep; `stopServer` leaves nothing mounted at the
 * mountpoint and no child running (SIGKILL by the child's own pid only as a last resort).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import * as path from "node:path";
import { forceUnmount, mountsAt, waitFor } from "../../helpers/mounts";

export const FIXTURE = path.join(__dirname, "serve-fixture.js");

export interface Server {
  child: ChildProcess;
  mnt: string;
  stdout: string;
  stderr: string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
}

export async function startServer(
  src: string,
  mnt: string,
  env: Record<string, string> = {},
): Promise<Server> {
  const child = spawn(process.execPath, [FIXTURE, src, mnt], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  const server: Server = {
    child,
    mnt,
    stdout: "",
    stderr: "",
    exited: false,
    exit: Promise.resolve({ code: null, signal: null }),
  };
  server.exit = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      server.exited = true;
      resolve({ code, signal });
    });
  });
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (server.stdout += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (server.stderr += d));
  try {
    await waitFor(
      () =>
        server.exited ||
        (server.stdout.includes("ready\n") && mountsAt(mnt).some((m) => m.fsType === "fuse.unionfs-ts")),
      10_000,
      "the passthrough mount",
    );
    if (server.exited) throw new Error(`server exited before ready: ${server.stderr.trim()}`);
  } catch (err) {
    await stopServer(server);
    throw err;
  }
  return server;
}

/** Unmounts (lazily if need be), waits for the server to exit, kills it by pid only if it will not. */
export async function stopServer(server: Server): Promise<void> {
  try {
    forceUnmount(server.mnt);
  } finally {
    try {
      await waitFor(() => server.exited, 10_000, "the server to exit");
    } catch {
      server.child.kill("SIGKILL");
      await server.exit;
    }
  }
}
