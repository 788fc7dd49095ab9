/**
 * Whether a layer's disk is cold: reads that were blocked (waiting for the disk, not for a CPU) have
 * come often lately. Prefetch (prefetch.ts) pays only then; on a warm tree it would cost threads and
 * memory for nothing.
 *
 * Invariants: the state is three Int32 words in a SharedArrayBuffer (times in ms of the monotonic clock,
 * compared wrap-safe), written by any thread that times a read (the serving thread, prefetch threads)
 * without locks: it is a hint, and a lost update only shifts when prefetching starts or stops.
 * Time on a CPU or waiting for one (schedstat) is not a wait for the disk; a single blocked read (a page
 * fault, a GC helper) does not make the disk cold either: WAITS_FOR_COLD within WINDOW_MS do. Steal time
 * on an overcommitted VM does count as blocked. While the disk was found cold less than FRESH_MS ago,
 * reads are not timed (`wantsEvidence`): timing costs two readings of the thread's clocks per read, most
 * of the serving thread's prefetch overhead on a cold walk. Reads are timed again for the last
 * COLD_FOR_MS − FRESH_MS of the cold period, which leaves SLACK_MS more than one WINDOW_MS: a disk whose
 * reads keep waiting (WAITS_FOR_COLD in a window) stays cold without a gap. A thread's schedstat
 * descriptor stays open until `closeThreadClock` (serving and prefetch threads call it when they end).
 */
import * as fs from "node:fs";
import { threadCpuNs } from "../sys/libc";

/** Time blocked during one read that means it waited for the disk (from memory: a few µs). */
const WAITED_NS = 100_000n;
const WINDOW_MS = 500;
const WAITS_FOR_COLD = 8;
/** How long the disk counts as cold after the last time it was found so. */
const COLD_FOR_MS = 1_000;
/** Time left after a window's worth of timed reads before the cold state would expire. */
const SLACK_MS = 200;
/** For this long after the disk was found cold, reads are not timed: more evidence would change nothing. */
const FRESH_MS = COLD_FOR_MS - WINDOW_MS - SLACK_MS;

const WINDOW = 0;
const WAITS = 1;
const COLD_AT = 2;

/** This thread's /proc/thread-self/schedstat, open (null: unavailable; undefined: not yet opened). */
let schedstat: number | null | undefined;
const statBuf = Buffer.alloc(96);

/**
 * The time this thread has spent waiting for a CPU, in ns (/proc/thread-self/schedstat's second field,
 * exact up to the thread's last run: the first field, time run, lags up to a tick, so CPU time comes
 * from the thread's CPU clock instead); undefined where the kernel does not tell.
 */
function queuedNs(): bigint | undefined {
  if (schedstat === null) return undefined;
  try {
    schedstat ??= fs.openSync("/proc/thread-self/schedstat", "r");
    const n = fs.readSync(schedstat, statBuf, 0, statBuf.length, 0);
    return BigInt(statBuf.toString("latin1", 0, n).split(" ")[1] ?? "");
  } catch {
    closeThreadClock();
    schedstat = null;
    return undefined;
  }
}

/** Time this thread ran or waited to run, in ns; undefined where the kernel does not tell. */
function runnableNs(): bigint | undefined {
  const queued = queuedNs();
  return queued === undefined ? undefined : queued + threadCpuNs();
}

/** Closes this thread's schedstat descriptor (a thread that ends calls it: the fd is the process's). */
export function closeThreadClock(): void {
  if (typeof schedstat === "number") fs.closeSync(schedstat);
  schedstat = undefined;
}

/**
 * Runs `fn` and tells whether it was blocked (neither running nor waiting for a CPU: a preempted thread
 * or a first call's compiling does not count) for longer than a read from memory takes. Never, where
 * the kernel does not tell.
 */
export function waitedFor<T>(fn: () => T): { value: T; waited: boolean } {
  const before = runnableNs();
  const wall = process.hrtime.bigint();
  const value = fn();
  const elapsed = process.hrtime.bigint() - wall;
  // Blocked time never exceeds the elapsed time: a quick call needs no second reading.
  if (before === undefined || elapsed <= WAITED_NS) return { value, waited: false };
  const after = runnableNs();
  if (after === undefined) return { value, waited: false };
  return { value, waited: elapsed - (after - before) > WAITED_NS };
}

/** Milliseconds of the monotonic clock (the same for every thread; never steps with the wall clock). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

export class ColdDisk {
  private readonly words: Int32Array;

  /**
   * A new state (`shared` undefined), or another thread's (its `shared`). `clock`: milliseconds of a
   * monotonic clock, stored as Int32 and compared with wrap-safe differences (tests give their own).
   */
  constructor(
    shared?: SharedArrayBuffer,
    private readonly clock: () => number = monotonicMs,
  ) {
    this.words = new Int32Array(shared ?? new SharedArrayBuffer(12));
    if (shared === undefined) {
      const now = this.clock();
      Atomics.store(this.words, WINDOW, now - 2 * WINDOW_MS);
      Atomics.store(this.words, COLD_AT, now - 2 * COLD_FOR_MS);
    }
  }

  get shared(): SharedArrayBuffer {
    return this.words.buffer as SharedArrayBuffer;
  }

  /** Counts a read that waited for the disk. */
  waited(): void {
    const now = this.clock();
    if (this.since(WINDOW, now) > WINDOW_MS) {
      Atomics.store(this.words, WINDOW, now);
      Atomics.store(this.words, WAITS, 0);
    }
    if (Atomics.add(this.words, WAITS, 1) + 1 >= WAITS_FOR_COLD) Atomics.store(this.words, COLD_AT, now);
  }

  isCold(): boolean {
    return this.since(COLD_AT, this.clock()) <= COLD_FOR_MS;
  }

  /** Whether reads are worth timing (`waitedFor`): not while the disk was found cold within FRESH_MS. */
  wantsEvidence(): boolean {
    return this.since(COLD_AT, this.clock()) > FRESH_MS;
  }

  /** `fn`'s value; timed (waitedFor) and counted if it waited, unless no evidence is wanted now. */
  timed<T>(fn: () => T): T {
    if (!this.wantsEvidence()) return fn();
    const { value, waited } = waitedFor(fn);
    if (waited) this.waited();
    return value;
  }

  /** Milliseconds from the time in word `at` to `now`, wrap-safe (a time 24.8 days old looks very old). */
  private since(at: number, now: number): number {
    return ((now | 0) - Atomics.load(this.words, at)) >>> 0;
  }
}
