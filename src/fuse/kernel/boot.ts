/**
 * Entry of a prestarted serving thread (prestart.ts): waits for its WorkerData, then loads worker.ts.
 *
 * Invariant: nothing native (koffi) is loaded before the "start" message. A process may exit while an
 * untaken thread is still booting, and Node aborts the whole process when it stops a thread in the middle
 * of a native module's initialisation.
 */
import { parentPort } from "node:worker_threads";
import type { WorkerData } from "./messages";
import { received } from "./prestart";

parentPort?.once("message", (msg: { type: "start"; data: WorkerData }) => {
  received(msg.data);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("./worker");
});
