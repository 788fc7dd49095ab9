/**
 * Page invalidations sent off the serving thread.
 *
 * Dropping a node's cached pages (FUSE_NOTIFY_INVAL_INODE with a non-negative offset) makes the kernel
 * lock each page. A page may be locked by a task that waits for a READ only the serving thread can
 * answer (copy_file_range and splice fill one file's pages while reading another's), so the serving
 * thread must never block on that write: it would wait on the task that waits on it.
 *
 * Invariants: the serving thread only posts (never blocks); one thread, started on first use and never
 * keeping the process alive, writes the notifications in the order posted. Attribute-only invalidations
 * take no page lock and stay on the serving thread (loop.ts), sent before the reply.
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import type { NotifyMessage } from "./notify-thread";

export class PageNotifier {
  private worker: Worker | undefined;

  constructor(private readonly fd: number) {}

  /** Queues `msg` for the device; returns at once. */
  send(msg: Buffer): void {
    if (this.worker === undefined) {
      this.worker = new Worker(path.join(__dirname, "notify-thread.js"));
      this.worker.unref();
    }
    const m: NotifyMessage = { fd: this.fd, msg };
    this.worker.postMessage(m);
  }

  /** Stops the thread (whatever it was still writing is moot: the session is over). */
  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }
}
