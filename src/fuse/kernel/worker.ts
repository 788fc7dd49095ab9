/**
 * Worker-thread entry: builds the filesystem, waits for the mount, serves it until the session ends.
 *
 * Invariants:
 * - The filesystem is built here (never in the mounting thread): `createUnion(config)`, or the factory
 *   export when `factory` is set (test seam).
 * - After the gate opens, the thread runs the synchronous loop and nothing else; console output is
 *   redirected to synchronous writes on fd 1/2 because the worker's async stdio never flushes while
 *   the loop runs.
 * - `ops.destroy()` runs once when the session ends (DESTROY or ENODEV), then the thread exits with 0.
 *   An error escaping the loop is reported ("failed"), then rethrown so the thread exits non-zero and the
 *   main thread takes the mount down.
 */
import * as fs from "node:fs";
import { format } from "node:util";
import { parentPort, workerData } from "node:worker_threads";
import type { UnionConfig } from "../../unionfs/config";
import type { UnionOps } from "../../unionfs/types";
import { codeOf } from "../../errors";
import { describeFlags } from "./init";
import { logAt, logLine, serve } from "./loop";
import { logTo } from "./log";
import { GATE_GO, GATE_WAIT } from "./messages";
import { isPrestarted, receivedData } from "./prestart";
import type { WorkerData, WorkerMessage } from "./messages";
import { Session } from "./session";
import { ringUnusable } from "./ring";

/** Whether this thread can make an io_uring for FUSE; says why not (the mount then serves /dev/fuse). */
function ringUsable(): boolean {
  const why = ringUnusable();
  if (why !== undefined)
    logLine(`io_uring asked for, but no io_uring can be set up here (${why}); serving /dev/fuse`, "warning");
  return why === undefined;
}

function post(msg: WorkerMessage): void {
  parentPort?.postMessage(msg);
}

function syncConsole(): void {
  const to =
    (fd: number) =>
    (...args: unknown[]): void => {
      try {
        fs.writeSync(fd, `${format(...args)}\n`);
      } catch {
        // the stream is gone
      }
    };
  console.log = console.info = console.debug = to(1);
  console.error = console.warn = console.trace = to(2);
}

async function build(data: WorkerData): Promise<UnionOps> {
  if (data.factory === undefined) {
    const core = await import("../../unionfs/index");
    return core.createUnion(data.config);
  }
  const mod = (await import(data.factory.module)) as Record<string, unknown>;
  const make = mod[data.factory.name];
  if (typeof make !== "function") {
    throw new Error(`factory ${data.factory.name} is not a function in ${data.factory.module}`);
  }
  return (make as (c: UnionConfig) => UnionOps)(data.config);
}

function failed(err: unknown): WorkerMessage {
  return { type: "failed", message: err instanceof Error ? err.message : String(err), code: codeOf(err) };
}

async function main(data: WorkerData): Promise<void> {
  syncConsole();
  if (data.logFile !== undefined) logTo(data.logFile);
  let ops: UnionOps;
  try {
    ops = await build(data);
  } catch (err) {
    post(failed(err));
    return;
  }
  post({ type: "built" });
  const gate = new Int32Array(data.gate);
  Atomics.wait(gate, 0, GATE_WAIT);
  const session = new Session(ops, {
    devFd: data.fd,
    passthrough: data.config.passthrough !== "off",
    splice: process.env.UNIONFS_TS_SPLICE !== "0",
    syncThread: process.env.UNIONFS_TS_SYNC_THREAD !== "0",
    uring: data.config.ioUring === true && ringUsable(),
    entryTimeout: data.config.cacheTimeout,
    attrTimeout: data.config.cacheTimeout,
    log: logAt("warning"),
  });
  try {
    if (Atomics.load(gate, 0) === GATE_GO) {
      let channel = "/dev/fuse";
      serve(data.fd, session, {
        debug: data.debug,
        onTransport: (name) => (channel = name),
        onReady: () => {
          const neg = session.neg;
          const flags = describeFlags(neg?.flags ?? 0, neg?.flags2 ?? 0);
          const ready = { minor: neg?.minor ?? 0, flags, channel };
          if (data.debug)
            logLine(
              `INIT: protocol 7.${ready.minor}, flags ${ready.flags}; requests over ${channel}`,
              "debug",
            );
          post({ type: "ready", ...ready });
        },
        onInitFailed: (errno) => post({ type: "failed", message: `INIT refused (errno ${errno})` }),
      });
      if (data.debug) {
        logLine(`session ended; ${session.table.size} node(s) still known (root included)`, "debug");
      }
    }
  } catch (err) {
    post(failed(err));
    throw err;
  } finally {
    try {
      session.destroy();
    } catch (err) {
      logLine(`destroy failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, "error");
    }
  }
}

/** The WorkerData: given at creation, or (a prestarted thread) in its "start" message (boot.ts). */
function data(): Promise<WorkerData> {
  if (!isPrestarted(workerData)) return Promise.resolve(workerData as WorkerData);
  const d = receivedData();
  return d === undefined ? Promise.reject(new Error("no start message")) : Promise.resolve(d);
}

data()
  .then(main)
  .catch((err: unknown) => {
    logLine(
      `serving stopped by an error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      "error",
    );
    process.exit(1); // ends this thread only, with a non-zero code the main thread acts on
  });
