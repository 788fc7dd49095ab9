/**
 * I/O off the serving thread: a few threads (io-worker.ts) that each do one request's I/O on an open
 * file — an FSYNC's flush, a large READ that would wait for the disk (`readWouldWait`) — and write its
 * reply themselves, so a request that waits for the disk holds up no other request. The serving thread
 * keeps everything else: inodes, handles, caches.
 *
 * Invariants:
 * - One pool per serving thread (`ioThreads()`), owned by that thread, shared by every session it
 *   serves (hub.ts serves several). Threads start when a job finds none free, and each ends after
 *   IDLE_MS without a job (a V8 isolate is ~9 MiB); at most `max` run at once.
 * - A thread is never terminated from outside, only told to stop after its jobs: one stopped inside a
 *   native call aborts the process. A serving thread that ends waits for its pool (`closeIoThreads`).
 * - A job goes to a running thread with nothing in flight. When there is none, a READ is done inline by
 *   the caller (it costs the serving thread one read, as before); an FSYNC queues behind the thread
 *   with the fewest jobs, since waiting for a flush would hold up every request of the serving thread.
 * - `take` and a thread's decision to end agree through two words shared with that thread only: the
 *   serving thread counts a job in flight before it looks whether the thread runs; the thread marks
 *   itself ended before it looks whether a job is in flight, and takes the mark back if one is. So no job
 *   is posted to an ended thread, and a new thread gets new words.
 * - A job carries duplicates of its descriptors (the file's and the reply's: /dev/fuse, or the pipe the
 *   io_uring transport commits from, ring.ts), which its thread closes when done: a RELEASE, a handle
 *   that follows a copy-up, or a session that ends never closes a descriptor under a job, and a reply is
 *   never written to a descriptor number that was reused.
 * - What a job reads or flushes is what the request asks for: the kernel sends no RELEASE while a READ
 *   or FSYNC of the file is unanswered, every WRITE answered before the request was sent is in the file
 *   already, and a READ racing a WRITE of the same pages is ordered by the kernel's page locks.
 * - Each job gets exactly one reply, written by its thread (an error as its errno).
 */
import * as os from "node:os";
import * as path from "node:path";
import { ENDED, RUNNING, STATE, WorkerSlots, type WorkerSlot } from "../../sys/worker-slots";
import { cachedPages, closeFd, dupFd } from "../../sys/libc";
import { pagesOf } from "./splice";

/** What a thread does for one request; the reply goes to `reply` with the request's `unique`. */
export type IoJob =
  | { kind: "fsync"; fd: number; reply: number; unique: bigint; datasync: boolean }
  | { kind: "read"; fd: number; reply: number; unique: bigint; offset: bigint; size: number };

/** What a thread is sent: a job, or the order to end once the jobs sent before it are done. */
export type IoOrder = IoJob | { kind: "stop" };

export interface IoWorkerData {
  /** Int32 words: STATE and INFLIGHT. */
  shared: SharedArrayBuffer;
  idleMs: number;
}

/** Index of the count of a thread's jobs in flight (its state is word STATE: worker-slots.ts). */
export const INFLIGHT = 1;
export { ENDED, RUNNING, STATE };

const IDLE_MS = 10_000;

/** Threads per pool: enough to overlap a few disk waits, few enough to stay small. */
export function defaultThreads(): number {
  return Math.max(2, Math.min(4, os.availableParallelism()));
}

export class IoThreads {
  /** The threads; once starting one failed, every job is done inline from then on. */
  private readonly slots: WorkerSlots;

  constructor(
    max = defaultThreads(),
    private readonly idleMs = IDLE_MS,
  ) {
    this.slots = new WorkerSlots(max, path.join(__dirname, "io-worker.js"), 2);
  }

  /**
   * Hands `job` over (with its descriptors duplicated; the caller's stay open): true, and the thread
   * answers. False: the caller does it inline. Starts a thread when none was free.
   */
  take(job: IoJob): boolean {
    const slot = this.free() ?? (job.kind === "fsync" ? this.leastBusy() : undefined);
    if (slot === undefined) {
      this.startOne();
      return false;
    }
    Atomics.add(slot.words, INFLIGHT, 1);
    if (Atomics.load(slot.words, STATE) !== RUNNING) {
      Atomics.sub(slot.words, INFLIGHT, 1);
      return false;
    }
    const fds: number[] = [];
    try {
      fds.push(dupFd(job.fd), dupFd(job.reply));
    } catch {
      fds.forEach(closeFd); // no descriptor left (EMFILE): inline
      Atomics.sub(slot.words, INFLIGHT, 1);
      return false;
    }
    slot.worker.postMessage({ ...job, fd: fds[0], reply: fds[1] });
    return true;
  }

  /** How many threads run now (each may end by itself after IDLE_MS). */
  get running(): number {
    return this.slots.running().length;
  }

  /**
   * Tells every thread to end once its jobs are done, and waits up to `waitMs` for that. Never
   * terminated: a thread stopped inside a native call (koffi) aborts the whole process.
   */
  close(waitMs = 0): void {
    this.slots.close({ kind: "stop" } satisfies IoOrder, waitMs);
  }

  private free(): WorkerSlot | undefined {
    return this.slots.running().find((s) => Atomics.load(s.words, INFLIGHT) === 0);
  }

  private leastBusy(): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const s of this.slots.running()) {
      if (best === undefined || Atomics.load(s.words, INFLIGHT) < Atomics.load(best.words, INFLIGHT))
        best = s;
    }
    return best;
  }

  /** Starts a thread in the first empty or ended slot, unless every slot has one starting or running. */
  private startOne(): void {
    this.slots.startOne((shared) => ({ shared, idleMs: this.idleMs }) satisfies IoWorkerData);
  }
}

/**
 * Whether a READ of these bytes would wait for the disk: some page of them is not in the page cache.
 * One that would not is served inline, where it costs less than the hop to another thread (a wake-up
 * across CPUs); one that would is worth handing over. Unknown (no cachestat): not handed over.
 */
export function readWouldWait(fd: number, offset: bigint, size: number): boolean {
  const cached = cachedPages(fd, offset, size);
  return cached !== undefined && cached < pagesOf(offset, size);
}

let mine: IoThreads | undefined;

/** This thread's pool (made on first use). */
export function ioThreads(): IoThreads {
  mine ??= new IoThreads();
  return mine;
}

/**
 * Ends this thread's pool, if it has one (the thread stops serving), waiting up to `waitMs` for the jobs
 * in flight: a thread that ends terminates the threads it started.
 */
export function closeIoThreads(waitMs = 0): void {
  mine?.close(waitMs);
  mine = undefined;
}
