/**
 * Prefetch: a few threads that warm the kernel's caches for a directory layer's objects the union is
 * about to read one after the other (READDIRPLUS looks up every entry of a directory, and lists each
 * entry that is a directory for its whiteout markers). On a cold disk each of those reads waits for the
 * disk in turn on the serving thread; done ahead on several threads, the waits overlap, and the serving
 * thread's own reads then find the inodes and directory blocks in memory (or wait on the same read).
 *
 * Invariants:
 * - A hint only: what a thread reads is thrown away and nothing depends on it. It never changes
 *   anything (prefetch-worker.ts: lstat, O_NOATIME listings, no symlink followed). A request is dropped,
 *   not queued without bound, when every thread has MAX_PENDING jobs, and while the disk is not cold
 *   (cold.ts). A job names its directory by path (`/proc/self/fd/N/…` for a read-only layer): one still
 *   queued when its layer closes may read whatever N is by then, which is harmless for a read-only hint.
 * - One pool per thread that asks (`prefetcher()`), owned by that thread (a hub thread's serves all its
 *   mounts). Threads start when a job finds none idle and end after IDLE_MS without a job (a V8 isolate
 *   is ~9 MiB). A job posted to a thread that just ended is lost, which a hint may be.
 * - A thread is not meant to be terminated from outside (one stopped inside a native call aborts the
 *   process): a serving thread that ends closes its pool (`closePrefetcher`), which sets STOP (each thread
 *   then skips what is left of its jobs: one read at most) and waits for the threads to end. A hub thread
 *   never ends before its process exits, as with its I/O threads.
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { waitAllEqual } from "../sys/atomics";
import { closeThreadClock, ColdDisk } from "./cold";

/** What a thread is sent: warm each of `names` in directory `dir` (prefetch-worker.ts), or end. */
export type PrefetchOrder = { kind: "warm"; dir: string; names: string[] } | { kind: "stop" };

export interface PrefetchWorkerData {
  /** Int32 words: STATE, PENDING, DONE and STOP. */
  shared: SharedArrayBuffer;
  /** The pool's ColdDisk state. */
  cold: SharedArrayBuffer;
  idleMs: number;
}

export const STATE = 0;
export const PENDING = 1;
/** Jobs the thread has done (for tests and diagnostics). */
export const DONE = 2;
/** Set by the pool when it closes: the thread skips what is left of its jobs. */
export const STOP = 3;
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
    const ending = this.slots.filter((s) => s !== undefined);
    this.slots.fill(undefined);
    for (const s of ending) {
      Atomics.store(s.words, STOP, 1);
      s.worker.postMessage({ kind: "stop" } satisfies PrefetchOrder);
    }
    return waitAllEqual(
      ending.map((s) => s.words),
      STATE,
      ENDED,
      waitMs,
    );
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
      const words = new Int32Array(new SharedArrayBuffer(16)); // starting, nothing pending or done
      const workerData: PrefetchWorkerData = {
        shared: words.buffer as SharedArrayBuffer,
        cold: this.cold.shared,
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
