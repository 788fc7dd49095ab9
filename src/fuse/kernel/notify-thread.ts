/**
 * Entry of the page-invalidation thread (notifier.ts): writes each notification the serving thread
 * puts in the shared ring to /dev/fuse, in order, and says when each one is done.
 *
 * Invariants: it only writes the notifications given (never reads the device); it takes slot `done`
 * only after the producer published it (`head`), and publishes `done + 1` once written, whatever the
 * outcome (waking the serving thread if it waits). A write the kernel refuses because it no longer knows the node (ENOENT) or the session
 * ended (ENODEV) is fine, anything else is logged (logLine never throws, whatever became of stderr).
 * It blocks in Atomics.wait between notifications and never uses its event loop, so it needs no
 * message once started. Only this thread may load this module.
 */
import { workerData } from "node:worker_threads";
import { DONE, HEAD, READY, ringSlot, writeNotification, type RingData } from "./notify-ring";

function run({ fd, ctrl, ring }: RingData): void {
  const c = new Int32Array(ctrl);
  Atomics.store(c, READY, 1);
  Atomics.notify(c, READY);
  for (;;) {
    const done = Atomics.load(c, DONE);
    if (Atomics.load(c, HEAD) === done) {
      Atomics.wait(c, HEAD, done);
      continue;
    }
    writeNotification(fd, ringSlot(ring, done));
    Atomics.store(c, DONE, done + 1);
    Atomics.notify(c, DONE);
  }
}

run(workerData as RingData);
