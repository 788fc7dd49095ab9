/**
 * When a thread serving one mount may spin on its empty device instead of sleeping: the next request of
 * a burst (an `ls -l`'s next `lstat` or `getxattr`) is then read at once, without the wake-up across
 * CPUs that a sleeping thread needs (~40 µs on the bench's VM), at the price of the CPU the spin takes.
 *
 * Invariants:
 * - Owned by the thread that spins: a serving thread (one per mount it serves alone; hub.ts never
 *   spins; over io_uring, not on its device but for the queue threads' hand-overs: loop.ts) or an
 *   io_uring queue thread (queue-worker.ts).
 * - A spin lasts at most `spinNs` (UNIONFS_TS_SPIN_US, default 30 µs; 0 turns it off), yields to any
 *   thread waiting for this CPU at every turn, and never happens on a machine with one CPU (the caller
 *   could not run meanwhile).
 * - Spinning pays only where a CPU is free: the thread looks, every CHECK_NS, how many threads of the
 *   system run or wait to run (/proc/loadavg); while more than there are CPUs, it sleeps at once instead
 *   of spinning, taking no CPU from them. Threads that spin for each other (`SpinMates`: a mount's
 *   io_uring queue threads and its serving thread) count themselves while they spin, and those are not
 *   counted as others wanting the CPUs.
 */
import { availableParallelism } from "node:os";
import * as fs from "node:fs";
import { schedYield } from "../../sys/libc";

const DEFAULT_SPIN_US = 30;
const CHECK_NS = 10_000_000n;
const CPUS = availableParallelism();
const loadavg = Buffer.alloc(128);
let loadavgFd: number | undefined;

/**
 * Threads that run or wait to run now, system-wide (the fourth field of /proc/loadavg, "R/T"); 0 when it
 * cannot be read (then nothing counts as contended).
 */
function runnable(): number {
  try {
    loadavgFd ??= fs.openSync("/proc/loadavg", "r");
    const n = fs.readSync(loadavgFd, loadavg, 0, loadavg.length, 0);
    const field = loadavg.toString("latin1", 0, n).split(" ")[3] ?? "";
    return Number.parseInt(field, 10) || 0;
  } catch {
    return 0;
  }
}

/** A word shared by threads that spin for one mount: how many of them spin now. */
export interface SpinMates {
  words: Int32Array;
  index: number;
}

export class Spinner {
  private until = -1n;
  private nextCheck = 0n;
  private contended = false;

  /**
   * `mates`: the threads of a mount that spin for each other (io_uring's queue threads and the serving
   * thread: queue-threads.ts) count themselves there while they spin, and are not counted as contention.
   */
  constructor(
    readonly spinNs: bigint,
    private readonly mates?: SpinMates,
  ) {}

  /** The spinner from the environment (see the header); `never`: this mount must not spin. */
  static of(never: boolean, mates?: SpinMates): Spinner {
    if (never || availableParallelism() < 2) return new Spinner(0n);
    const env = process.env.UNIONFS_TS_SPIN_US;
    const us = env !== undefined && env !== "" ? Number(env) : DEFAULT_SPIN_US;
    return new Spinner(Number.isFinite(us) && us > 0 ? BigInt(Math.round(us * 1000)) : 0n, mates);
  }

  get enabled(): boolean {
    return this.spinNs > 0n;
  }

  /** The device was empty: true to read it again now (spinning), false to sleep until it is readable. */
  again(): boolean {
    const now = process.hrtime.bigint();
    if (this.until < 0n) {
      if (this.spinNs === 0n || this.isContended(now)) return false;
      this.until = now + this.spinNs;
      if (this.mates !== undefined) Atomics.add(this.mates.words, this.mates.index, 1);
    } else if (now >= this.until) {
      this.reset();
      return false;
    }
    schedYield();
    return true;
  }

  /** A request came (or the spin ended): the next empty read begins a new spin. */
  reset(): void {
    if (this.until >= 0n && this.mates !== undefined) Atomics.sub(this.mates.words, this.mates.index, 1);
    this.until = -1n;
  }

  /** More threads run or wait to run than there are CPUs, not counting the mates that spin now. */
  private isContended(now: bigint): boolean {
    if (now < this.nextCheck) return this.contended;
    this.nextCheck = now + CHECK_NS;
    const mates = this.mates === undefined ? 0 : Atomics.load(this.mates.words, this.mates.index);
    this.contended = runnable() - mates > CPUS;
    return this.contended;
  }
}
