/**
 * Entry of the page-invalidation thread (notifier.ts): writes each notification it is sent to
 * /dev/fuse, in the order sent.
 *
 * Invariants: it only writes the notifications given (never reads the device); a write the kernel
 * refuses because it no longer knows the node (ENOENT) or the session ended (ENODEV) is fine, anything
 * else is logged (logLine never throws, whatever became of stderr). Only this thread may load this
 * module: it listens on its parent port, which would keep any other thread alive.
 */
import * as fs from "node:fs";
import { parentPort } from "node:worker_threads";
import { codeOf } from "../../errors";
import { logLine } from "./log";

export interface NotifyMessage {
  fd: number;
  msg: Uint8Array;
}

parentPort?.on("message", ({ fd, msg }: NotifyMessage) => {
  try {
    fs.writeSync(fd, msg);
  } catch (err) {
    const code = codeOf(err);
    if (code !== "ENOENT" && code !== "ENODEV")
      logLine(`notification rejected by the kernel: ${String(err)}`);
  }
});
