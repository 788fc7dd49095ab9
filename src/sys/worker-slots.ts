/**
 * Slots for worker threads that start on demand and end by themselves once idle: the I/O threads
 * (fuse/kernel/io-threads.ts) and the prefetch threads (layer/prefetch.ts).
 *
 * Invariants:
 * - Owned by the thread that made it. Each thread gets its own Int32 words (`wordCount` of them, made
 *   with the thread, so one that ends late touches no other's); word STATE is STARTING until the thread
 *   runs, then RUNNING, then ENDED, which the thread sets (and notifies) as it ends: the thread's side
 *   of this is `markRunning` and `markEnded`, for every kind of thread.
 * - A slot whose thread ended is reused; once starting a thread failed, none is started again.
 * - A thread is never terminated from outside (one stopped inside a native call aborts the process):
 *   `close` posts each its stop order and waits, up to a deadline, for its ENDED.
 */
import { parentPort, Worker } from "node:worker_threads";

export const STATE = 0;
export const STARTING = 0;
export const RUNNING = 1;
export const ENDED = 2;

/** On a started thread, once it takes orders: its pool may post to it from now on. */
export function markRunning(words: Int32Array): void {
  Atomics.store(words, STATE, RUNNING);
}

/**
 * On a thread as it ends: ENDED, told to a pool waiting in `close`, and its port closed (no further
 * message is taken; its event loop may end).
 */
export function markEnded(words: Int32Array): void {
  Atomics.store(words, STATE, ENDED);
  Atomics.notify(words, STATE);
  parentPort?.close();
}

export interface WorkerSlot {
  worker: Worker;
  words: Int32Array;
}

export class WorkerSlots {
  private readonly slots: Array<WorkerSlot | undefined>;
  private failed = false;

  /** `max` slots for threads running `file` (a compiled module's path), each with `wordCount` words. */
  constructor(
    max: number,
    private readonly file: string,
    private readonly wordCount: number,
  ) {
    this.slots = new Array<WorkerSlot | undefined>(Math.max(1, max)).fill(undefined);
  }

  /** The threads started, whatever their state. */
  started(): WorkerSlot[] {
    return this.slots.filter((s) => s !== undefined);
  }

  /** The threads that run now. */
  running(): WorkerSlot[] {
    return this.started().filter((s) => Atomics.load(s.words, STATE) === RUNNING);
  }

  /** Threads started and not ended. */
  get live(): number {
    return this.started().filter((s) => Atomics.load(s.words, STATE) !== ENDED).length;
  }

  /**
   * Starts a thread in the first empty or ended slot, unless every slot has one starting or running;
   * `data` makes its workerData from its words.
   */
  startOne(data: (shared: SharedArrayBuffer) => object): void {
    if (this.failed) return;
    const i = this.slots.findIndex((s) => s === undefined || Atomics.load(s.words, STATE) === ENDED);
    if (i < 0) return;
    try {
      const words = new Int32Array(new SharedArrayBuffer(4 * this.wordCount)); // STARTING, all zero
      const workerData = data(words.buffer as SharedArrayBuffer);
      const resourceLimits = { maxYoungGenerationSizeMb: 1 };
      const worker = new Worker(this.file, { workerData, resourceLimits });
      worker.unref();
      this.slots[i] = { worker, words };
    } catch {
      this.failed = true;
    }
  }

  /**
   * Forgets every thread and posts each `stop` (after `before`, if given), then waits up to `waitMs` in
   * all for them to end; whether they all did.
   */
  close(stop: unknown, waitMs: number, before?: (s: WorkerSlot) => void): boolean {
    const ending = this.started();
    this.slots.fill(undefined);
    for (const s of ending) {
      before?.(s);
      s.worker.postMessage(stop);
    }
    const deadline = Date.now() + waitMs;
    for (const { words } of ending) {
      for (let now = Atomics.load(words, STATE); now !== ENDED; now = Atomics.load(words, STATE)) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        Atomics.wait(words, STATE, now, left);
      }
    }
    return true;
  }
}
