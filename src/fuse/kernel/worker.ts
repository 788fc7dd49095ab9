/**
 * Worker-thread entry: builds the filesystem, waits for the mount, serves it until the session ends.
 *
 * Invariants:
 * - The filesystem is built here (never in the mounting thread: serving.ts).
 * - After the gate opens, the thread runs the synchronous loop and nothing else; console output is
 *   redirected to synchronous writes on fd 1/2 because the worker's async stdio never flushes while
 *   the loop runs.
 * - `ops.destroy()` runs once when the session ends (DESTROY or ENODEV), then the thread exits with 0.
 *   An error escaping the loop is reported ("failed"), then rethrown so the thread exits non-zero and the
 *   main thread takes the mount down.
 */
import { parentPort, workerData } from "node:worker_threads";
import { logLine, serve } from "./loop";
import { logTo } from "./log";
import { GATE_GO, GATE_WAIT } from "./messages";
import { isPrestarted, receivedData } from "./prestart";
import type { WorkerData, WorkerMessage } from "./messages";
import { closeIoThreads } from "./io-threads";
import { closePrefetcher } from "../../layer/prefetch";
import { build, destroyMount, failed, readyMessage, sessionOf, syncConsole } from "./serving";
import { errorText } from "../../errors";
import type { UnionOps } from "../../unionfs/types";

function post(msg: WorkerMessage): void {
  parentPort?.postMessage(msg);
}

function main(data: WorkerData): void {
  syncConsole();
  if (data.logFile !== undefined) logTo(data.logFile);
  let ops: UnionOps;
  try {
    ops = build(data);
  } catch (err) {
    post(failed(err));
    return;
  }
  post({ type: "built" });
  const gate = new Int32Array(data.gate);
  Atomics.wait(gate, 0, GATE_WAIT);
  const session = sessionOf(ops, data);
  try {
    if (Atomics.load(gate, 0) === GATE_GO) {
      let channel = "/dev/fuse";
      serve(data.fd, session, {
        debug: data.debug,
        onTransport: (name) => (channel = name),
        onReady: () => post(readyMessage(session, channel, data.debug)),
        onInitFailed: (errno) => post({ type: "failed", message: `INIT refused (errno ${errno})` }),
        spawnQueues: (threads) => post({ type: "queues", threads }),
      });
      if (data.debug) {
        logLine(`session ended; ${session.table.size} node(s) still known (root included)`, "debug");
      }
    }
  } catch (err) {
    post(failed(err));
    throw err;
  } finally {
    destroyMount(session);
    closeIoThreads(IO_WAIT_MS);
    closePrefetcher(IO_WAIT_MS);
  }
}

/** How long an ending mount waits for its I/O threads' jobs (a flush of a big file): see io-threads.ts. */
const IO_WAIT_MS = 30_000;

/** The WorkerData: given at creation, or (a prestarted thread) in its "start" message (boot.ts). */
function data(): WorkerData {
  if (!isPrestarted(workerData)) return workerData as WorkerData;
  const d = receivedData();
  if (d === undefined) throw new Error("no start message");
  return d;
}

try {
  main(data());
} catch (err) {
  logLine(`serving stopped by an error: ${errorText(err)}`, "error");
  process.exit(1); // ends this thread only, with a non-zero code the main thread acts on
}
