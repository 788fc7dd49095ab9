/**
 * Whether a layer's disk is cold: reads that wait for it, off the CPU, have come often lately. Prefetch
 * (prefetch.ts) pays only then; on a warm tree it would cost threads and CPU for nothing.
 *
 * Invariants: the state is three Int32 words in a SharedArrayBuffer, written by any thread that times a
 * read (the serving thread, prefetch threads) without locks: it is a hint, and a lost update only
 * shifts when prefetching starts or stops. A single slow read (a thread preempted, a page fault, a
 * first call compiled) does not make the disk cold: WAITS_FOR_COLD within WINDOW_MS do.
 */
import { threadCpuNs } from "../sys/libc";

/** Off-CPU time during one read that means it waited for the disk (from memory: a few µs). */
const WAITED_NS = 100_000n;
const WINDOW_MS = 1_000;
const WAITS_FOR_COLD = 8;
/** How long the disk counts as cold after the last time it was found so. */
const COLD_FOR_MS = 1_000;

const WINDOW = 0;
const WAITS = 1;
const COLD_AT = 2;

/**
 * Runs `fn` and tells whether it waited, off the CPU, for longer than a read from memory takes: wall
 * time minus the thread's CPU time, so a first call's compiling does not count.
 */
export function waitedFor<T>(fn: () => T): { value: T; waited: boolean } {
  const wall = process.hrtime.bigint();
  const cpu = threadCpuNs();
  const value = fn();
  const off = process.hrtime.bigint() - wall - (threadCpuNs() - cpu);
  return { value, waited: off > WAITED_NS };
}

export class ColdDisk {
  private readonly words: Int32Array;

  /** A new state (`shared` undefined), or another thread's (its `shared` and `base`). */
  constructor(
    shared?: SharedArrayBuffer,
    readonly base = Date.now(),
  ) {
    this.words = new Int32Array(shared ?? new SharedArrayBuffer(12));
    if (shared === undefined) Atomics.store(this.words, COLD_AT, -2 * COLD_FOR_MS);
  }

  get shared(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** Counts a read that waited for the disk. */
  waited(): void {
    const now = this.now();
    if (now - Atomics.load(this.words, WINDOW) > WINDOW_MS) {
      Atomics.store(this.words, WINDOW, now);
      Atomics.store(this.words, WAITS, 0);
    }
    if (Atomics.add(this.words, WAITS, 1) + 1 >= WAITS_FOR_COLD) Atomics.store(this.words, COLD_AT, now);
  }

  isCold(): boolean {
    return this.now() - Atomics.load(this.words, COLD_AT) <= COLD_FOR_MS;
  }

  private now(): number {
    return Date.now() - this.base;
  }
}
