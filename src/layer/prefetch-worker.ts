/**
 * Entry of a prefetch thread (prefetch.ts): for each job of an order, each directory named S is lstat'ed
 * and listed, then S/* and S/*\/* the same way (lstat, and a listing when a directory), results thrown
 * away; after `idleMs` without an order, end.
 *
 * Invariants: nothing is changed: lstat, and listings opened O_NOATIME without the fallback the union
 * has for directories it does not own (atime.ts), so those are skipped; a symlink is never followed (the
 * decision is lstat's, and the open is O_NOFOLLOW). No error leaves an order and nothing is written to
 * stderr; PENDING counts an order out only once it is done; once the pool sets STOP, what is left of
 * the order is skipped, so a stop waits for one read at most. Only a prefetch thread may load this module.
 */
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { bytesOf } from "../sys/bytes";
import { markEnded, markRunning } from "../sys/worker-slots";
import { listNoatime, type DirName } from "./atime";
import { closeThreadClock, ColdDisk } from "./cold";
import { DONE, PENDING, STOP, type PrefetchOrder, type PrefetchWorkerData } from "./prefetch";

const { shared, cold, idleMs } = workerData as PrefetchWorkerData;
const words = new Int32Array(shared);
const disk = new ColdDisk(cold);

/** Never a symlink followed, never an access time changed (no fallback without O_NOATIME). */
const { O_NOFOLLOW, O_NOATIME } = fs.constants;
/** Levels listed below a directory asked about: the walk's next lookups read the first two. */
const LEVELS = 2;
let idle: NodeJS.Timeout | undefined;

/** listNoatime, counting a listing that waited for the disk in the pool's ColdDisk. */
function list(p: string): DirName[] {
  return disk.timed(() => listNoatime(p, O_NOFOLLOW | O_NOATIME));
}

/** Whether the pool asked this thread to stop: looked at before each object, so a stop waits for one. */
function stopping(): boolean {
  return Atomics.load(words, STOP) !== 0;
}

/**
 * lstat's `p` and, if it is a directory (a symlink is never followed), lists it; then, while `levels`
 * is above 0, warms each of its entries the same way with one level less.
 */
function warm(p: string, levels: number): void {
  if (stopping()) return;
  let entries: DirName[];
  try {
    if (fs.lstatSync(bytesOf(p), { throwIfNoEntry: false })?.isDirectory() !== true) return;
    entries = list(p);
  } catch {
    return; // gone, not allowed, too long: a hint that did not help
  }
  if (levels > 0) for (const e of entries) warm(`${p}/${e.name}`, levels - 1);
}

function end(): void {
  clearTimeout(idle);
  closeThreadClock();
  markEnded(words);
}

/** Ends the thread unless an order is on its way (one posted after this is lost: prefetch.ts). */
function endIfIdle(): void {
  if (Atomics.load(words, PENDING) > 0) return idleAgain();
  end();
}

function idleAgain(): void {
  clearTimeout(idle);
  idle = setTimeout(endIfIdle, idleMs);
}

parentPort?.on("message", (order: PrefetchOrder) => {
  if (order.kind === "stop") return end();
  try {
    for (const { dir, names } of order.jobs) for (const name of names) warm(`${dir}/${name}`, LEVELS);
  } finally {
    Atomics.add(words, DONE, 1);
    Atomics.sub(words, PENDING, 1);
    idleAgain();
  }
});
markRunning(words);
idleAgain();
