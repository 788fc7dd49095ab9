/**
 * FUSE over io_uring with one queue thread per CPU (queue-worker.ts), seen from the thread that owns the
 * mount's state (inodes, handles, caches: the serving thread). The kernel queues each request on its
 * caller's CPU; that CPU's queue thread receives it without a wake-up across CPUs, hands it over through
 * shared memory (queue-words.ts), and commits the reply the serving thread writes into the entry. The
 * serving thread spins between requests (spin.ts) so that a hand-over seldom needs a wake-up either.
 *
 * Invariants:
 * - Owned by the serving thread; one per mount served over io_uring on a machine with several CPUs.
 * - Requests are served one at a time by the serving thread, oldest first (SEQ), as with /dev/fuse; an
 *   entry taken is answered exactly once (`reply`), possibly later (held, FSYNC on an I/O thread). The
 *   exception: a READ of a handle the serving thread published (direct-reads.ts) never reaches it; its
 *   queue thread reads and answers it.
 * - A reply's undo is kept with its entry until the entry's next request shows the reply was taken, and
 *   runs if the queue thread reports it refused (E_REFUSED, seen before any later request of the entry).
 * - The serving thread sleeps only after announcing it (W_STATE_SLEEPING) and finding nothing waiting
 *   afterwards; a queue thread that hands over a request after the announcement writes the doorbell. The
 *   same protocol, per queue, wakes a queue thread whose reply is DONE (Q_SLEEPING and its wake pipe).
 * - The threads are started by the mounting thread (`spawnQueueWorkers`, asked through SpawnQueues), so
 *   that a serving thread that dies cannot leave its process waiting for them. They end with the session
 *   (W_GONE), when `close` tells them, or when the mounting thread does once the serving thread ended;
 *   `close` waits for them, and closes the pipes only once none runs.
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { closeFd, drainPipe, pipe, pollReadable, setNonBlocking } from "../../sys/libc";
import type { Negotiated } from "./init";
import { currentLog, logLine } from "./log";
import {
  ENT_COMMIT_ID,
  fillReply,
  payloadSize,
  possibleCpus,
  RingRefused,
  takeSyncReplies,
  type RingEntry,
} from "./ring";
import { codeOfErrno } from "../../errors";
import type { QueueWorkerData } from "./queue-worker";
import * as W from "./queue-words";
import { ring } from "./queue-words";
import type { SpinMates } from "./spin";

/** Entries per queue: requests kept long (held copy-ups, FSYNCs) leave the others free. */
export const THREADED_DEPTH = 8;
const SETUP_WAIT_MS = 10_000;
const DEFAULT_QUEUE_SPIN_US = 200;

/** Whether a mount served over io_uring gets a thread per CPU (UNIONFS_TS_QUEUE_THREADS=0: one thread). */
export function queueThreadsWanted(): boolean {
  return process.env.UNIONFS_TS_QUEUE_THREADS !== "0" && possibleCpus() > 1;
}

export class QueueThreads {
  private readonly view: W.QueueView;
  private readonly doorbell: [number, number];
  private readonly wakes: Array<[number, number]> = [];
  private readonly syncPipe: [number, number];
  private closed = false;

  /** The hand-over over `shared`, with its pipes; no thread runs until `start` (unit tests use this alone). */
  constructor(
    shared: W.SharedQueues,
    private readonly devFd: number,
    private readonly debug = false,
  ) {
    this.view = new W.QueueView(shared);
    this.doorbell = wakePipe();
    this.syncPipe = pipe();
    for (let qid = 0; qid < shared.queues; qid++) this.wakes.push(wakePipe());
  }

  /** The read end of queue `qid`'s wake pipe. */
  wakeFdOf(qid: number): number {
    return (this.wakes[qid] as [number, number])[0];
  }

  /**
   * Starts a thread per queue and waits until each registered its entries. Throws RingRefused when the
   * kernel refused one (the mount then serves /dev/fuse), an Error when a thread could not start.
   */
  static start(
    devFd: number,
    neg: Negotiated,
    spawn: SpawnQueues,
    debug = false,
    queues = possibleCpus(),
  ): QueueThreads {
    const shared = W.allocate({ queues, depth: THREADED_DEPTH, payload: payloadSize(neg) });
    const q = new QueueThreads(shared, devFd, debug);
    try {
      Atomics.store(q.view.words, W.W_ALIVE, queues);
      spawn(q.threadData());
      q.waitSettled();
      return q;
    } catch (err) {
      q.close();
      throw err;
    }
  }

  /** The word the serving thread and the queue threads count their spins in (spin.ts). */
  get spinMates(): SpinMates {
    return { words: this.view.words, index: W.W_SPINNING };
  }

  get entries(): readonly RingEntry[] {
    return this.view.entries;
  }

  /** The table of handles whose READs the queue threads read themselves (direct-reads.ts). */
  get directReads(): SharedArrayBuffer {
    return this.view.shared.reads;
  }

  /** Where the I/O threads write their FSYNC replies (out-headers) for `commitSynced`. */
  get syncReplyFd(): number {
    return this.syncPipe[1];
  }

  /** What the serving thread polls for the I/O threads' replies (then `commitSynced`). */
  get syncFd(): number {
    return this.syncPipe[0];
  }

  /** Whether serving is over: the session ended, or a queue thread stopped by an error (`failed`). */
  get gone(): boolean {
    return this.view.get(W.W_GONE) !== 0;
  }

  get failed(): boolean {
    return this.view.get(W.W_GONE) === W.GONE_FAILED;
  }

  /** What each queue thread is started with. */
  private threadData(): QueueWorkerData[] {
    const spinEnv = Number(process.env.UNIONFS_TS_QUEUE_SPIN_US);
    const spinUs = Number.isFinite(spinEnv) && spinEnv >= 0 ? spinEnv : DEFAULT_QUEUE_SPIN_US;
    return Array.from({ length: this.view.shared.queues }, (_, qid) => ({
      shared: this.view.shared,
      qid,
      devFd: this.devFd,
      wakeFd: this.wakeFdOf(qid),
      wakeWriteFd: (this.wakes[qid] as [number, number])[1],
      doorbellFd: this.doorbell[1],
      spinUs,
      log: currentLog(),
      debug: this.debug,
    }));
  }

  private waitSettled(): void {
    const deadline = Date.now() + SETUP_WAIT_MS;
    const n = this.view.shared.queues;
    for (let s = this.view.get(W.W_SETTLED); s < n; s = this.view.get(W.W_SETTLED)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`io_uring queue threads not ready after ${SETUP_WAIT_MS} ms`);
      Atomics.wait(this.view.words, W.W_SETTLED, s, left);
    }
    const refused = this.view.get(W.W_REFUSED);
    if (refused !== 0) throw new RingRefused(codeOfErrno(refused));
    if (this.view.get(W.W_FAILED) !== 0) throw new Error("an io_uring queue thread could not be set up");
  }

  /**
   * The requests handed over, oldest first, each now TAKEN with `request` set; undoes the replies the
   * kernel refused first.
   */
  take(): RingEntry[] {
    const v = this.view;
    const out: RingEntry[] = [];
    for (const e of v.entries) {
      if (v.get(v.entryWord(e.tag, W.E_REFUSED)) === 1) {
        v.set(v.entryWord(e.tag, W.E_REFUSED), 0);
        e.undo?.();
        e.undo = undefined;
      }
      if (v.get(v.entryWord(e.tag, W.E_STATE)) !== W.WAITING) continue;
      e.undo = undefined; // its last reply was taken: the entry got a new request
      const start = v.get(v.entryWord(e.tag, W.E_REQ_START));
      e.request = e.buf.subarray(start, start + v.get(v.entryWord(e.tag, W.E_REQ_LEN)));
      e.commitId = e.buf.readBigUInt64LE(ENT_COMMIT_ID);
      out.push(e);
    }
    if (out.length > 1) out.sort((a, b) => seqOf(v, a) - seqOf(v, b));
    for (const e of out) v.set(v.entryWord(e.tag, W.E_STATE), W.TAKEN);
    return out;
  }

  /** Whether a request waits to be taken. */
  waiting(): boolean {
    const v = this.view;
    return v.entries.some((e) => v.get(v.entryWord(e.tag, W.E_STATE)) === W.WAITING);
  }

  /** Answers the request `e` holds (see FuseRing.reply); its queue thread commits it. */
  reply(e: RingEntry, errno: number, parts: readonly Buffer[], undo?: () => void): void {
    e.undo = undo;
    fillReply(e, errno, errno === 0 ? parts : [], (l) => logLine(l, "warning"));
    const v = this.view;
    v.set(v.entryWord(e.tag, W.E_STATE), W.DONE);
    if (Atomics.exchange(v.words, v.queueWord(e.qid, W.Q_SLEEPING), 0) === 1)
      ring((this.wakes[e.qid] as [number, number])[1]);
  }

  /**
   * Sleeps until a request is handed over or one of `fds` is readable; returns which of `fds` are (none
   * when it did not sleep: something was waiting already).
   */
  sleep(fds: readonly number[]): boolean[] {
    const v = this.view;
    v.set(W.W_STATE_SLEEPING, 1);
    if (this.waiting() || this.gone) {
      v.set(W.W_STATE_SLEEPING, 0);
      return fds.map(() => false);
    }
    const ready = pollReadable([...fds, this.doorbell[0]]);
    v.set(W.W_STATE_SLEEPING, 0);
    if (ready[fds.length] === true) drainPipe(this.doorbell[0]);
    return ready.slice(0, fds.length);
  }

  /** Answers the FSYNCs the I/O threads replied to, each on the entry holding its request. */
  commitSynced(devSend: (reply: Buffer) => void): void {
    takeSyncReplies(this.syncPipe[0], this.view.entries, (e, errno) => this.reply(e, errno, []), devSend);
  }

  /** Tells the threads to end, waits up to `waitMs` for them, then closes the pipes (none runs then). */
  close(waitMs = W.DRAIN_MS + 1000): void {
    if (this.closed) return;
    this.closed = true;
    const v = this.view;
    v.set(W.W_STOP, 1);
    for (const [, w] of this.wakes) ring(w);
    const deadline = Date.now() + waitMs;
    for (let alive = v.get(W.W_ALIVE); alive > 0; alive = v.get(W.W_ALIVE)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        logLine(`${alive} io_uring queue thread(s) did not end; their pipes stay open`, "warning");
        return;
      }
      Atomics.wait(v.words, W.W_ALIVE, alive, left);
    }
    for (const p of [this.doorbell, this.syncPipe, ...this.wakes]) p.forEach(closeFd);
  }
}

/** A pipe neither end of which blocks: a wake-up never waits for its reader. */
function wakePipe(): [number, number] {
  const p = pipe();
  setNonBlocking(p[1]);
  return p;
}

function seqOf(v: W.QueueView, e: RingEntry): number {
  return v.get(v.entryWord(e.tag, W.E_SEQ));
}

/** How the serving thread has its queue threads started (by the mounting thread: link.ts). */
export type SpawnQueues = (threads: QueueWorkerData[]) => void;

/** The queue threads the mounting thread started for one mount. */
export interface QueueWorkers {
  /** Tells them to end (the serving thread is gone); they close their rings, which frees the device. */
  stop(): void;
}

/**
 * Starts the queue threads (on the mounting thread). One that cannot start counts as set up and failed,
 * so the serving thread does not wait for it.
 */
export function spawnQueueWorkers(threads: readonly QueueWorkerData[]): QueueWorkers {
  const first = threads[0];
  if (first === undefined) return { stop: () => undefined };
  const view = new W.QueueView(first.shared);
  const file = path.join(__dirname, "queue-worker.js");
  for (const data of threads) {
    try {
      const w = new Worker(file, { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: 1 } });
      w.on("error", (err) => logLine(`io_uring queue ${data.qid}: ${err.message}`, "error"));
      w.unref();
    } catch (err) {
      logLine(`io_uring queue ${data.qid}: cannot start a thread: ${(err as Error).message}`, "error");
      view.set(W.W_FAILED, 1);
      Atomics.sub(view.words, W.W_ALIVE, 1);
      Atomics.add(view.words, W.W_SETTLED, 1);
      Atomics.notify(view.words, W.W_SETTLED);
    }
  }
  return {
    stop(): void {
      // Their pipes stay open while one runs (the serving thread closes them only once none does).
      if (view.get(W.W_ALIVE) === 0) return;
      view.set(W.W_STOP, 1);
      for (const t of threads) ring(t.wakeWriteFd);
    },
  };
}
