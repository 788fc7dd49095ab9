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
 *   not queued without bound, when every thread has MAX_PENDING orders, and while the disk is not cold
 *   (cold.ts). A job names its directory by path (`/proc/self/fd/N/…` for a read-only layer): one still
 *   queued when its layer closes may read whatever N is by then, which is harmless for a read-only hint.
 * - Jobs are posted in orders of about CHUNK names: a big directory is split, and the jobs of small ones
 *   are held back (`batch`) until a chunk is full or `flush` (`flushPrefetch`): whoever asks layers to
 *   prefetch flushes on the same thread once it has asked them all (dirs.ts, in a `finally`), so a held
 *   job never outlives the request that asked for it. An order that finds every thread full is dropped
 *   whole, with the jobs of every layer (or union, on a hub thread) in it. `close` drops what is held.
 * - One pool per thread that asks (`prefetcher()`), owned by that thread (a hub thread's serves all its
 *   mounts). Threads start when an order finds none idle and end after IDLE_MS without one (a V8 isolate
 *   is ~9 MiB). An order posted to a thread that just ended is lost, which a hint may be.
 * - A thread is not meant to be terminated from outside (one stopped inside a native call aborts the
 *   process): a serving thread that ends closes its pool (`closePrefetcher`), which sets STOP (each thread
 *   then skips what is left of its orders: one read at most) and waits for the threads to end. A hub thread
 *   never ends before its process exits, as with its I/O threads.
 */
import * as path from "node:path";
import { WorkerSlots, type WorkerSlot } from "../sys/worker-slots";
import { closeThreadClock, ColdDisk } from "./cold";

/** Names of directory `dir` to warm. */
export interface PrefetchJob {
  dir: string;
  names: string[];
}

/** What a thread is sent: warm each job's names (prefetch-worker.ts), or end. */
export type PrefetchOrder = { kind: "warm"; jobs: PrefetchJob[] } | { kind: "stop" };

export interface PrefetchWorkerData {
  /** Int32 words: STATE, PENDING, DONE and STOP. */
  shared: SharedArrayBuffer;
  /** The pool's ColdDisk state. */
  cold: SharedArrayBuffer;
  idleMs: number;
}

/** Index of the count of a thread's orders not done yet (its state is word STATE: worker-slots.ts). */
export const PENDING = 1;
/** Orders the thread has done (for tests and diagnostics). */
export const DONE = 2;
/** Set by the pool when it closes: the thread skips what is left of its orders. */
export const STOP = 3;

const IDLE_MS = 500;
/** Orders a thread may have waiting before further ones are dropped. */
const MAX_PENDING = 16;
/** Names per order: a big directory is spread over the threads, small ones share an order. */
const CHUNK = 8;

/**
 * Threads per pool: enough to keep a few disk reads in flight (they mostly wait for the disk, so there
 * may be more than CPUs): on the bench's 2-vCPU VM a cold `find` took 5.2 s with 4 and 5.6 with 2.
 */
const THREADS = 4;

export class Prefetcher {
  private readonly slots: WorkerSlots;
  readonly cold = new ColdDisk();
  /** Jobs not posted yet (`flush`), and how many names they hold (below CHUNK). */
  private batch: PrefetchJob[] = [];
  private batched = 0;

  constructor(
    max = THREADS,
    private readonly idleMs = IDLE_MS,
  ) {
    this.slots = new WorkerSlots(max, path.join(__dirname, "prefetch-worker.js"), 4);
  }

  /**
   * Warms `names` in directory `dir` (an absolute byte-string path) on the pool's threads, while the disk
   * is cold (cold.ts: reads that waited, the asker's and the pool threads'): a warm tree costs no
   * thread and no CPU. Names are posted CHUNK at a time; what is left waits for the next call or
   * `flush` (one order for the small directories of several layers: a posted message wakes a thread).
   */
  warm(dir: string, names: readonly string[]): void {
    if (!this.cold.isCold()) return;
    for (let at = 0; at < names.length;) {
      const take = Math.min(CHUNK - this.batched, names.length - at);
      this.batch.push({ dir, names: names.slice(at, at + take) });
      this.batched += take;
      at += take;
      if (this.batched >= CHUNK && !this.flush()) return;
    }
  }

  /** Posts the jobs batched so far; false when every thread was full (they are dropped: hints). */
  flush(): boolean {
    if (this.batched === 0) return true;
    const jobs = this.batch;
    this.batch = [];
    this.batched = 0;
    return this.post({ kind: "warm", jobs });
  }

  /** Threads started and not ended. */
  get threads(): number {
    return this.slots.live;
  }

  /** Orders done by the threads running now. */
  get done(): number {
    return this.slots.started().reduce((n, s) => n + Atomics.load(s.words, DONE), 0);
  }

  /**
   * Drops the jobs held back, tells every thread to end and waits up to `waitMs` for them (each job is
   * short); whether they all ended.
   */
  close(waitMs = 0): boolean {
    this.batch = [];
    this.batched = 0;
    const stop = { kind: "stop" } satisfies PrefetchOrder;
    return this.slots.close(stop, waitMs, (s) => Atomics.store(s.words, STOP, 1));
  }

  /** Posts `order` to the running thread with the fewest orders; false when every one is full. */
  protected post(order: PrefetchOrder): boolean {
    let best: WorkerSlot | undefined;
    let fewest = MAX_PENDING;
    for (const s of this.slots.running()) {
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
    this.slots.startOne(
      (shared) => ({ shared, cold: this.cold.shared, idleMs: this.idleMs }) satisfies PrefetchWorkerData,
    );
  }
}

let mine: Prefetcher | undefined;

/** This thread's pool (made on first use). */
export function prefetcher(): Prefetcher {
  mine ??= new Prefetcher();
  return mine;
}

/**
 * Whether this thread's layers would warm anything now (the disk is cold): an asker may skip gathering
 * what to warm otherwise, as `warm` would drop it.
 */
export function prefetchWanted(): boolean {
  return mine?.cold.isCold() === true;
}

/** Posts what this thread's layers asked to warm so far (Layer.prefetch batches small requests). */
export function flushPrefetch(): void {
  mine?.flush();
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
