/**
 * READs the io_uring queue threads answer themselves (queue-worker.ts): the open handles whose data a
 * plain read of one descriptor gives, published by the serving thread. Such a READ is then read on the
 * caller's CPU, into the ring entry's memory, with no hand-over to the serving thread and back.
 *
 * Invariants:
 * - Written by the serving thread only (`publish`, `retract`, `setEpoch`), read by the queue threads.
 * - Slot `fh % SLOTS` holds at most one handle (fh, descriptor, epoch); a handle whose slot is taken is
 *   not published, and its READs go to the serving thread as before.
 * - A published descriptor stays open until the handle's RELEASE (UnionOps.readFd), and the kernel
 *   sends no RELEASE while a READ of the handle is unanswered: a queue thread never reads a descriptor
 *   closed or reused under it.
 * - A queue thread reads a handle only while the slot's epoch is the table's, which the serving thread
 *   sets to the core's copy-up epoch before every reply (loop.ts `handle`). So a READ sent after the
 *   reply of a request that copied a file up goes to the serving thread, which has the handle follow the
 *   copy (a write through another handle is seen by a later read) and publishes it again.
 */

/** Slots of the table (a power of two): handles are numbered in order, so few open ones collide. */
const SLOTS = 4096;
const W_EPOCH = 0;
const SLOT_FH = 0;
const SLOT_FD = 1;
const SLOT_EPOCH = 2;
const SLOT_WORDS = 3;
const HEAD_WORDS = 1;
/** Handles numbered above this are not published (a slot's fh is one Int32 word). */
const MAX_FH = 0x7fffffff;

/** The table's memory, zeroed: nothing published. */
export function allocateDirectReads(): SharedArrayBuffer {
  return new SharedArrayBuffer((HEAD_WORDS + SLOTS * SLOT_WORDS) * 4);
}

function slotOf(fh: number): number {
  return HEAD_WORDS + (fh & (SLOTS - 1)) * SLOT_WORDS;
}

/** The queue threads' view: the descriptor to read for handle `fh`, or -1 (the serving thread serves). */
export function directFd(words: Int32Array, fh: bigint): number {
  if (fh <= 0n || fh > BigInt(MAX_FH)) return -1;
  const n = Number(fh);
  const at = slotOf(n);
  if (Atomics.load(words, at + SLOT_FH) !== n) return -1;
  if (Atomics.load(words, at + SLOT_EPOCH) !== Atomics.load(words, W_EPOCH)) return -1;
  const fd = Atomics.load(words, at + SLOT_FD);
  // Published again in between (same handle): either descriptor is the handle's and still open.
  return Atomics.load(words, at + SLOT_FH) === n ? fd : -1;
}

/** The serving thread's side. */
export class DirectReads {
  readonly words: Int32Array;

  constructor(memory: SharedArrayBuffer) {
    this.words = new Int32Array(memory);
  }

  /** Handle `fh` reads `fd` (undefined: it has none, so its slot is emptied) while the epoch is `epoch`. */
  publish(fh: number, fd: number | undefined, epoch: number): void {
    if (fh <= 0 || fh > MAX_FH) return;
    const at = slotOf(fh);
    const held = Atomics.load(this.words, at + SLOT_FH);
    if (held !== 0 && held !== fh) return; // another open handle has the slot
    if (fd === undefined) {
      Atomics.store(this.words, at + SLOT_FH, 0);
      return;
    }
    // Published again (held === fh): a reader that sees the new epoch sees the new descriptor (stored
    // first); one that sees the old one reads either, both the handle's and open.
    Atomics.store(this.words, at + SLOT_FD, fd);
    Atomics.store(this.words, at + SLOT_EPOCH, epoch | 0);
    if (held !== fh) Atomics.store(this.words, at + SLOT_FH, fh);
  }

  /** Handle `fh` is being released: its READs are all answered, and none comes any more. */
  retract(fh: number): void {
    if (fh <= 0 || fh > MAX_FH) return;
    const at = slotOf(fh);
    if (Atomics.load(this.words, at + SLOT_FH) === fh) Atomics.store(this.words, at + SLOT_FH, 0);
  }

  /** The core's copy-up epoch now; stored before the reply of the request that changed it. */
  setEpoch(epoch: number): void {
    if (Atomics.load(this.words, W_EPOCH) !== (epoch | 0)) Atomics.store(this.words, W_EPOCH, epoch | 0);
  }
}
