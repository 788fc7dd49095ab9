/**
 * Entry of a prestarted serving thread (prestart.ts): waits for its WorkerData, then loads worker.ts.
 *
 * Invariant: nothing native (koffi) is loaded before the "start" message, unless the thread was started
 * to preload (PRELOADING): then it loads the serving code first and says "preloaded". A process may exit
 * while an untaken thread is still booting, and Node aborts the whole process when it stops a thread in
 * the middle of a native module's initialisation; only a process that waits for "preloaded" before it
 * exits (prestartSettled) may preload.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { WorkerData, WorkerMessage } from "./messages";
import { PRELOADING, received } from "./prestart";

if (workerData === PRELOADING) {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("./loop");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("../../unionfs/index");
  parentPort?.postMessage({ type: "preloaded" } satisfies WorkerMessage);
}

parentPort?.once("message", (msg: { type: "start"; data: WorkerData }) => {
  received(msg.data);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("./worker");
});
