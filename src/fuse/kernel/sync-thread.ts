/**
 * FSYNC off the serving thread: the sync thread (sync-worker.ts) flushes a file and answers the request
 * itself, so an fsync that waits for the disk (a database's commit, a big dirty file) holds up no other
 * request of the mount.
 *
 * Invariants:
 * - Owned by the serving thread. The thread starts at the first fsync handed over and answers only once
 *   it said it runs (`ready`); until then, and wherever it cannot start, fsyncs are done inline, as before.
 * - The thread gets a duplicate of the file's descriptor, which it closes when done, so a RELEASE or a
 *   handle that follows a copy-up never closes the descriptor under it.
 * - The kernel sends no RELEASE for the file while its FSYNC is unanswered (the caller holds the file),
 *   and every WRITE answered before the FSYNC was sent is in the file already: its data is what is synced.
 * - Each handed-over request gets exactly one reply, written by the thread (an error as its errno).
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";

/** What the serving thread sends the sync thread for one FSYNC. */
export interface SyncJob {
  fd: number;
  datasync: boolean;
  unique: bigint;
}

export interface SyncWorkerData {
  devFd: number;
  /** Int32 0: 1 once the thread takes jobs. */
  state: SharedArrayBuffer;
}

export class SyncThread {
  private worker: Worker | undefined;
  private failed = false;
  private readonly state = new SharedArrayBuffer(4);

  constructor(private readonly devFd: number) {}

  /** Whether fsyncs can be handed over now; the first call starts the thread. */
  ready(): boolean {
    if (this.worker === undefined && !this.failed) this.start();
    return Atomics.load(new Int32Array(this.state), 0) === 1;
  }

  /** Hands duplicate descriptor `fd` over, to be flushed and closed; the thread answers request `unique`. */
  sync(job: SyncJob): void {
    this.worker?.postMessage(job);
  }

  close(): void {
    void this.worker?.terminate();
    this.worker = undefined;
  }

  private start(): void {
    try {
      const workerData: SyncWorkerData = { devFd: this.devFd, state: this.state };
      this.worker = new Worker(path.join(__dirname, "sync-worker.js"), { workerData });
      this.worker.unref();
    } catch {
      this.failed = true; // fsyncs stay inline
    }
  }
}
