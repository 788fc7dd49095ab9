/**
 * Entry of a prestarted serving thread (prestart.ts): loads the serving code while the mounting thread
 * is still parsing and checking, waits for its WorkerData in a "start" message, then runs worker.ts.
 *
 * Invariant: nothing native (koffi) is loaded before the "start" message, unless the thread was started
 * to preload (PRELOADING): then it loads koffi and the tar layer's code too and says "preloaded". (A
 * command's own thread leaves the tar code to the union, which loads it for archives only: that thread
 * is still loading when the start message comes, and the mount would wait for it.) The serving code
 * loaded ahead binds its system calls on first use (sys/native.ts), so loading it is safe. A process
 * may exit while an untaken thread is still booting, and Node aborts the whole process when it stops a
 * thread in the middle of a native module's initialisation; only a process that waits for "preloaded"
 * before it exits (prestartSettled) may preload.
 */
import { parentPort, workerData } from "node:worker_threads";
import { tarModules } from "../../layer/tar/load";
import { libc } from "../../sys/native";
import type { WorkerData, WorkerMessage } from "./messages";
import { PRELOADING, received } from "./prestart";

// What worker.ts loads, ahead of the message (the mounting thread takes about as long to get there).
/* eslint-disable @typescript-eslint/no-require-imports */
require("./session");
require("./loop");
require("../../unionfs/index");
/* eslint-enable @typescript-eslint/no-require-imports */

if (workerData === PRELOADING) {
  // A thread that waits for a later mount has the time; a command's own thread is still loading when its
  // start message comes, and the union loads this only for a stack with archives (~10 ms of CPU).
  tarModules();
  libc();
  parentPort?.postMessage({ type: "preloaded" } satisfies WorkerMessage);
}

parentPort?.once("message", (msg: { type: "start"; data: WorkerData }) => {
  received(msg.data);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("./worker");
});
