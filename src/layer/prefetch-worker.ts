/**
 * Entry of a prefetch thread (prefetch.ts): for each job, each directory named is listed, its entries
 * lstat'ed, and those that are directories warmed the same way down to LEVELS levels (the last one
 * only listed), throwing the results away; after `idleMs` without a job, end.
 *
 * Invariants: nothing is changed (lstat, and listings without touching access times: atime.ts); no
 * error leaves a job and nothing is written to stderr; PENDING counts a job out only once it is done.
 * Only a prefetch thread may load this module.
 */
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { bytesOf } from "../sys/bytes";
import { listNoatime, type DirName } from "./atime";
import { closeThreadClock, ColdDisk, waitedFor } from "./cold";
import {
  DONE,
  ENDED,
  PENDING,
  RUNNING,
  STATE,
  type PrefetchOrder,
  type PrefetchWorkerData,
} from "./prefetch";

const { shared, cold, base, idleMs } = workerData as PrefetchWorkerData;
const words = new Int32Array(shared);
const disk = new ColdDisk(cold, base);

/** listNoatime, noting in the pool's word when it waited for the disk. */
function list(p: string): DirName[] {
  const { value, waited } = waitedFor(() => listNoatime(p));
  if (waited) disk.waited();
  return value;
}

const S_IFDIR = 0o040000;
/** Levels listed below a directory asked about: its entries' entries are looked up when the walk gets there. */
const LEVELS = 2;
let idle: NodeJS.Timeout | undefined;

/**
 * Lists directory `p` and lstat's each entry; an entry that is a directory (or may be) is warmed the
 * same way with one level less, or only listed at the last level.
 */
function warmDir(p: string, levels = LEVELS): void {
  let entries: DirName[];
  try {
    entries = list(p);
  } catch {
    return; // gone, not allowed, too long: a hint that did not help
  }
  for (const e of entries) {
    const q = `${p}/${e.name}`;
    try {
      fs.lstatSync(bytesOf(q), { throwIfNoEntry: false });
      if (e.type !== S_IFDIR && e.type !== 0) continue;
      if (levels > 1) warmDir(q, levels - 1);
      else list(q);
    } catch {
      // as above
    }
  }
}

function end(): void {
  clearTimeout(idle);
  closeThreadClock();
  Atomics.store(words, STATE, ENDED);
  Atomics.notify(words, STATE);
  parentPort?.close();
}

/** Ends the thread unless a job is on its way (one posted after this is lost: prefetch.ts). */
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
    for (const name of order.names) warmDir(`${order.dir}/${name}`);
  } finally {
    Atomics.add(words, DONE, 1);
    Atomics.sub(words, PENDING, 1);
    idleAgain();
  }
});
Atomics.store(words, STATE, RUNNING);
idleAgain();
