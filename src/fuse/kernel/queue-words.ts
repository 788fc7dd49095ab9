/**
 * What the thread that owns a mount's state and its queue threads (one per CPU, queue-threads.ts) share
 * when FUSE is served over io_uring: every ring entry's memory, and a few words per entry and per thread
 * saying who has the entry and who sleeps. Layout only; the protocol is in queue-threads.ts.
 *
 * Invariants:
 * - Entry `tag` (0 … queues × depth − 1) is entry `tag % depth` of queue `tag / depth`, at the same
 *   offset of `memory` in every thread; each thread builds its own RingEntry objects over it.
 * - An entry's STATE says who may touch its memory: KERNEL (with the kernel, or being committed: its
 *   queue thread), WAITING (a request the state thread has not taken yet), TAKEN (the state thread's,
 *   until it writes the reply), DONE (the reply is written; its queue thread commits it). Each change is
 *   a seq-cst store by the one thread that may make it, so whatever the entry's memory holds is seen by
 *   the next owner.
 * - REQ_START/REQ_LEN say where the request lies in the entry's memory (rebuilt in place, ring.ts), SEQ
 *   the order in which the queue threads received the requests (the state thread serves the oldest
 *   first); REFUSED is set when the kernel refused the entry's last reply, so the state thread undoes it.
 */
import * as fs from "node:fs";
import { allocateDirectReads } from "./direct-reads";
import { entryBytes, entryOver, type RingEntry } from "./ring";

/** How long a closing queue thread waits for its reads to end (QueueThreads.close waits longer). */
export const DRAIN_MS = 2000;

export const KERNEL = 0;
export const WAITING = 1;
export const TAKEN = 2;
export const DONE = 3;

/** Words of the whole: */
/** GONE_ENDED once a queue thread saw the session end, GONE_FAILED once one stopped by an error. */
export const W_GONE = 0;
export const GONE_ENDED = 1;
export const GONE_FAILED = 2;
/** 1 while the state thread sleeps (or is about to): whoever gives it work writes its doorbell. */
export const W_STATE_SLEEPING = 1;
/** The next request's SEQ. */
export const W_SEQ = 2;
/** Queue threads done with their setup, whatever its outcome (Atomics.notify on it). */
export const W_SETTLED = 3;
/** The errno of a REGISTER the kernel refused at setup (0: none). */
export const W_REFUSED = 4;
/** 1: queue threads end now. */
export const W_STOP = 5;
/** Queue threads still running (Atomics.notify when one ends). */
export const W_ALIVE = 6;
/** 1 when a queue thread failed to set up for another reason than a refusal (its error is logged). */
export const W_FAILED = 7;
/** How many of the mount's threads (queue threads, serving thread) spin now (spin.ts SpinMates). */
export const W_SPINNING = 8;
const GLOBAL_WORDS = 9;

/** Words of a queue: 1 while its thread sleeps (or is about to): whoever commits through it wakes it. */
export const Q_SLEEPING = 0;
const QUEUE_WORDS = 1;

/** Words of an entry. */
export const E_STATE = 0;
export const E_SEQ = 1;
export const E_REQ_START = 2;
export const E_REQ_LEN = 3;
export const E_REFUSED = 4;
const ENTRY_WORDS = 5;

export interface QueueLayout {
  queues: number;
  depth: number;
  payload: number;
}

export interface SharedQueues extends QueueLayout {
  control: SharedArrayBuffer;
  memory: SharedArrayBuffer;
  /** The handles whose READs the queue threads read themselves (direct-reads.ts). */
  reads: SharedArrayBuffer;
}

/** Allocates what `layout` needs (zeroed: every entry KERNEL, nothing set). */
export function allocate(layout: QueueLayout): SharedQueues {
  const entries = layout.queues * layout.depth;
  const words = GLOBAL_WORDS + layout.queues * QUEUE_WORDS + entries * ENTRY_WORDS;
  return {
    ...layout,
    control: new SharedArrayBuffer(words * 4),
    memory: new SharedArrayBuffer(entries * entryBytes(layout.payload)),
    reads: allocateDirectReads(),
  };
}

/** One thread's view of the shared queues. */
export class QueueView {
  readonly words: Int32Array;
  readonly entries: RingEntry[] = [];

  constructor(readonly shared: SharedQueues) {
    this.words = new Int32Array(shared.control);
    const size = entryBytes(shared.payload);
    for (let tag = 0; tag < shared.queues * shared.depth; tag++) {
      const buf = Buffer.from(shared.memory, tag * size, size);
      this.entries.push(entryOver(tag, Math.floor(tag / shared.depth), buf));
    }
  }

  /** The index of queue `qid`'s word `w`. */
  queueWord(qid: number, w: number): number {
    return GLOBAL_WORDS + qid * QUEUE_WORDS + w;
  }

  /** The index of entry `tag`'s word `w`. */
  entryWord(tag: number, w: number): number {
    return GLOBAL_WORDS + this.shared.queues * QUEUE_WORDS + tag * ENTRY_WORDS + w;
  }

  get(i: number): number {
    return Atomics.load(this.words, i);
  }

  set(i: number, v: number): void {
    Atomics.store(this.words, i, v);
  }

  /** Queue `qid`'s entries. */
  queueEntries(qid: number): RingEntry[] {
    return this.entries.slice(qid * this.shared.depth, (qid + 1) * this.shared.depth);
  }
}

const ONE = Buffer.from([1]);

/** One byte on a wake-up pipe (a doorbell); a full pipe wakes its reader anyway. */
export function ring(fd: number): void {
  try {
    fs.writeSync(fd, ONE);
  } catch {
    // EAGAIN: full, so its reader wakes anyway; EPIPE: the reader is gone
  }
}
