/**
 * FSYNC off the serving thread: the sync thread (sync-worker.ts) flushes a file and answers the request
 * itself, so an fsync that waits for the disk (a database's commit, a big dirty file) holds up no other
 * request of the mount.
 *
 * Invariants:
 * - Owned by the serving thread. The thread starts at the first fsync and takes jobs only once it said it
 *   runs; until then, and wherever it cannot start, fsyncs are done inline, as before. After IDLE_MS
 *   without a job it ends (its V8 isolate is ~9 MiB), and the next fsync starts one again.
 * - `take` and the thread's decision to end agree through two words shared with that thread only: the
 *   serving thread counts a job in flight before it looks whether the thread runs; the thread marks
 *   itself ended before it looks whether a job is in flight, and takes the mark back if one is. So no job
 *   is posted to an ended thread, and a new thread gets new words.
 * - The thread gets a duplicate of the file's descriptor, which it closes when done, so a RELEASE or a
 *   handle that follows a copy-up never closes the descriptor under it.
 * - The kernel sends no RELEASE for the file while its FSYNC is unanswered (the caller holds the file),
 *   and every WRITE answered before the FSYNC was sent is in the file already: its data is what is synced.
 * - Each job gets exactly one reply, written by the thread (an error as its errno).
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { closeFd, dupFd } from "../../sys/libc";

/** What the serving thread sends the sync thread for one FSYNC. */
export interface SyncJob {
  fd: number;
  datasync: boolean;
  unique: bigint;
}

export interface SyncWorkerData {
  /** Where replies go: /dev/fuse, or a pipe the io_uring transport reads them from (ring.ts). */
  devFd: number;
  /** Int32 words: STATE and INFLIGHT. */
  shared: SharedArrayBuffer;
  idleMs: number;
}

/** Index of the thread's state (STARTING, RUNNING, ENDED) and of the count of jobs in flight. */
export const STATE = 0;
export const INFLIGHT = 1;
export const STARTING = 0;
export const RUNNING = 1;
export const ENDED = 2;

const IDLE_MS = 10_000;

export class SyncThread {
  private worker: Worker | undefined;
  private failed = false;
  /** The current thread's words; each thread gets its own, so one that ends late touches no other's. */
  private words = new Int32Array(new SharedArrayBuffer(8));

  /** `ownsFd`: `devFd` is this object's (a pipe's write end), closed once no thread can write to it. */
  constructor(
    private readonly devFd: number,
    private readonly idleMs = IDLE_MS,
    private readonly ownsFd = false,
  ) {}

  /**
   * Hands an fsync of `fd` over when the thread runs (it answers request `unique`): true. False when it
   * does not (yet): the caller does it inline. The first call, and the first after the thread ended,
   * starts one.
   */
  take(fd: number, datasync: boolean, unique: bigint): boolean {
    if (!this.failed && (this.worker === undefined || Atomics.load(this.words, STATE) === ENDED))
      this.start();
    Atomics.add(this.words, INFLIGHT, 1);
    if (this.worker === undefined || Atomics.load(this.words, STATE) !== RUNNING) {
      Atomics.sub(this.words, INFLIGHT, 1);
      return false;
    }
    let dup: number;
    try {
      dup = dupFd(fd);
    } catch {
      Atomics.sub(this.words, INFLIGHT, 1); // no descriptor left (EMFILE): inline
      return false;
    }
    const job: SyncJob = { fd: dup, datasync, unique };
    this.worker.postMessage(job);
    return true;
  }

  /** Whether a thread runs now (it may end by itself after IDLE_MS). */
  get running(): boolean {
    return this.worker !== undefined && Atomics.load(this.words, STATE) === RUNNING;
  }

  close(): void {
    const worker = this.worker;
    this.worker = undefined;
    if (this.ownsFd) {
      // Only once the thread is gone: until then it may still write a reply to it.
      if (worker === undefined) closeFd(this.devFd);
      else worker.once("exit", () => closeFd(this.devFd));
    }
    void worker?.terminate();
  }

  private start(): void {
    try {
      this.words = new Int32Array(new SharedArrayBuffer(8)); // STARTING, nothing in flight
      const workerData: SyncWorkerData = {
        devFd: this.devFd,
        shared: this.words.buffer as SharedArrayBuffer,
        idleMs: this.idleMs,
      };
      const resourceLimits = { maxYoungGenerationSizeMb: 1 };
      this.worker = new Worker(path.join(__dirname, "sync-worker.js"), { workerData, resourceLimits });
      this.worker.unref();
    } catch {
      this.failed = true; // fsyncs stay inline
      this.worker = undefined;
    }
  }
}
