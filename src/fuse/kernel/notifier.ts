/**
 * Page invalidations, written to /dev/fuse by a thread of their own.
 *
 * Dropping a node's cached pages (FUSE_NOTIFY_INVAL_INODE with a non-negative offset) makes the kernel
 * lock each page. A page may be locked by a task that waits for a reply only the serving thread can
 * send (mmap writeback waits for WRITE; copy_file_range and splice fill one file's pages while reading
 * another's), so the serving thread must never be the one blocked on that write: it would wait on the
 * task that waits on it, and the mount would hang.
 *
 * Invariants:
 * - The serving thread hands each notification to the invalidation thread through a shared ring
 *   (notify-ring.ts), before the reply of the request that made the pages stale, and waits for it to
 *   be written, but at most WAIT_MS: in the ordinary case the pages are gone before that request
 *   returns (a read through another name of a hard-linked file sees the write); when a page lock holds
 *   the write up, the reply goes out anyway and serving goes on, so no wait ever closes a cycle (holding
 *   a reply back until the write is done would: a writer of one name waits for its reply while it holds
 *   the pages another name's invalidation needs).
 * - Notifications are written in the order sent. One thread, started on first use, never keeping the
 *   process alive. Attribute-only invalidations take no page lock and stay on the serving thread.
 */
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { logLine } from "./log";
import { DONE, HEAD, READY, newRing, ringSlot, SLOT_SIZE, SLOTS, type RingData } from "./notify-ring";

/**
 * How long the serving thread waits for one invalidation before it answers regardless. An uncontended
 * one takes well under a millisecond; a longer wait means a page lock holds it up, possibly by a task
 * that waits for this thread, so serving must go on.
 */
const WAIT_MS = 5;
/** How long the first notification waits for the thread to start (nothing it does can wait on us). */
const START_MS = 5_000;

export class PageNotifier {
  private worker: Worker | undefined;
  private data: RingData | undefined;

  constructor(private readonly fd: number) {}

  private ring(): RingData {
    if (this.data === undefined) {
      this.data = newRing(this.fd);
      this.worker = new Worker(path.join(__dirname, "notify-thread.js"), { workerData: this.data });
      this.worker.unref();
    }
    return this.data;
  }

  /** Queues `msg` for the device and waits, at most WAIT_MS, until it was written. */
  send(msg: Buffer): void {
    if (msg.length !== SLOT_SIZE) throw new Error(`notification of ${msg.length} bytes`);
    const { ctrl, ring } = this.ring();
    const c = new Int32Array(ctrl);
    if (Atomics.load(c, READY) === 0) Atomics.wait(c, READY, 0, START_MS);
    const head = Atomics.load(c, HEAD);
    if (head - Atomics.load(c, DONE) >= SLOTS) {
      logLine("page invalidations are stuck in the kernel; one was dropped", "warning");
      return;
    }
    ringSlot(ring, head).set(msg);
    Atomics.store(c, HEAD, head + 1);
    Atomics.notify(c, HEAD);
    const deadline = performance.now() + WAIT_MS;
    for (let done = Atomics.load(c, DONE); done <= head; done = Atomics.load(c, DONE)) {
      const left = deadline - performance.now();
      if (left <= 0 || Atomics.wait(c, DONE, done, left) === "timed-out") return;
    }
  }

  /** Stops the thread (whatever it was still writing is moot: the session is over). */
  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
    this.data = undefined;
  }
}
