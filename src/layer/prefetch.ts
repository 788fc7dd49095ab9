/**
 * Prefetch: a few threads that warm the kernel's caches for a directory layer's objects the union is
 * about to read one after the other (READDIRPLUS looks up every entry of a directory, and lists each
 * entry that is a directory for its whiteout markers). On a cold disk each of those reads waits for the
 * disk in turn on the serving thread; done ahead on several threads, the waits overlap, and the serving
 * thread's own reads then find the inodes and directory blocks in memory (or wait on the same read).
 *
 * Invariants:
 * - A hint only: what a thread reads is thrown away and nothing depends on it. It never changes
 *   anything: inodes are lstat'ed and directories listed as the layer lists them (O_NOATIME, atime.ts).
 *   A request is dropped, not queued without bound, when every thread has MAX_PENDING jobs, and while
 *   the disk is not cold (cold.ts).
 * - One pool per thread that asks (`prefetcher()`), owned by that thread. Threads start when a job finds
 *   none idle and end after IDLE_MS without a job (a V8 isolate is ~9 MiB). A job posted to a thread
 *   that just ended is lost, which a hint may be.
 * - A thread is never terminated from outside (one stopped inside a native call aborts the process):
 *   the thread that owns the pool ends it with `closePrefetcher`, which waits for the threads to end.
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { closeThreadClock, ColdDisk } from "./cold";

/** What a thread is sent: lstat each of `names` in directory `dir` and list those that are directories. */
export type PrefetchOrder = { kind: "warm"; dir: string; names: string[] } | { kind: "stop" };

export interface PrefetchWorkerData {
  /** Int32 words: STATE, PENDING and DONE. */
  shared: SharedArrayBuffer;
  /** The pool's ColdDisk state, and its base. */
  cold: SharedArrayBuffer;
  base: number;
  idleMs: number;
}

export const STATE = 0;
export const PENDING = 1;
/** Jobs the thread has done (for tests and diagnostics). */
export const DONE = 2;
export const RUNNING = 1;
export const ENDED = 2;

const IDLE_MS = 500;
/** Jobs a thread may have waiting before further requests are dropped. */
const MAX_PENDING = 16;
/** Names per job: a big directory is spread over the threads. */
const CHUNK = 8;

/**
 * Threads per pool: enough to keep a few disk reads in flight (they mostly wait for the disk, so there
 * may be more than CPUs): on the bench's 2-vCPU VM a cold `find` took 5.2 s with 4 and 5.6 with 2.
 */
const THREADS = 4;

interface Slot {
  worker: Worker;
  words: Int32Array;
}

export class Prefetcher {
  private readonly slots: Array<Slot | undefined>;
  readonly cold = new ColdDisk();
  private failed = false;

  constructor(
    max = THREADS,
    private readonly idleMs = IDLE_MS,
  ) {
    this.slots = new Array<Slot | undefined>(Math.max(1, max)).fill(undefined);
  }

  /**
   * Warms `names` in directory `dir` (an absolute byte-string path) on the pool's threads, while the disk
   * is cold (cold.ts: reads that waited, the asker's and the pool threads'): a warm tree costs no
   * thread and no CPU.
   */
  warm(dir: string, names: readonly string[]): void {
    if (!this.cold.isCold()) return;
    for (let at = 0; at < names.length; at += CHUNK) {
      if (!this.post({ kind: "warm", dir, names: names.slice(at, at + CHUNK) })) return;
    }
  }

  /** Threads started and not ended. */
  get threads(): number {
    return this.slots.filter((s) => s !== undefined && Atomics.load(s.words, STATE) !== ENDED).length;
  }

  /** Jobs done by the threads running now. */
  get done(): number {
    return this.slots.reduce((n, s) => n + (s === undefined ? 0 : Atomics.load(s.words, DONE)), 0);
  }

  /**
   * Tells every thread to end and waits up to `waitMs` for them (each job is short); whether they all
   * ended.
   */
  close(waitMs = 0): boolean {
    closeThreadClock();
    const ending = this.slots.filter((s) => s !== undefined);
    this.slots.fill(undefined);
    for (const s of ending) s.worker.postMessage({ kind: "stop" } satisfies PrefetchOrder);
    const deadline = Date.now() + waitMs;
    for (const s of ending) {
      for (let state = Atomics.load(s.words, STATE); state !== ENDED; state = Atomics.load(s.words, STATE)) {
        const left = deadline - Date.now();
        if (left <= 0) return false;
        Atomics.wait(s.words, STATE, state, left);
      }
    }
    return true;
  }

  /** Posts `order` to the running thread with the fewest jobs; false when every one is full. */
  private post(order: PrefetchOrder): boolean {
    let best: Slot | undefined;
    let fewest = MAX_PENDING;
    for (const s of this.slots) {
      if (s === undefined || Atomics.load(s.words, STATE) !== RUNNING) continue;
      const pending = Atomics.load(s.words, PENDING);
      if (pending < fewest) [best, fewest] = [s, pending];
    }
    if (best === undefined || fewest > 0) this.startOne();
    if (best === undefined) return false;
    Atomics.add(best.words, PENDING, 1);
    best.worker.postMessage(order);
    return true;
  }

  /** Starts a thread in the first empty or ended slot, if there is one. */
  private startOne(): void {
    if (this.failed) return;
    const i = this.slots.findIndex((s) => s === undefined || Atomics.load(s.words, STATE) === ENDED);
    if (i < 0) return;
    try {
      const words = new Int32Array(new SharedArrayBuffer(12)); // starting, nothing pending or done
      const workerData: PrefetchWorkerData = {
        shared: words.buffer as SharedArrayBuffer,
        cold: this.cold.shared,
        base: this.cold.base,
        idleMs: this.idleMs,
      };
      const resourceLimits = { maxYoungGenerationSizeMb: 1 };
      const worker = new Worker(path.join(__dirname, "prefetch-worker.js"), { workerData, resourceLimits });
      worker.unref();
      this.slots[i] = { worker, words };
    } catch {
      this.failed = true;
    }
  }
}

let mine: Prefetcher | undefined;

/** This thread's pool (made on first use). */
export function prefetcher(): Prefetcher {
  mine ??= new Prefetcher();
  return mine;
}

/**
 * Ends this thread's pool, if it has one, waiting up to `waitMs` for its threads to end; a thread that
 * read layers calls it when it ends.
 */
export function closePrefetcher(waitMs = 0): void {
  mine?.close(waitMs);
  mine = undefined;
  closeThreadClock(); // timed listings opened it even when nothing was ever warmed
}
