/**
 * Entry of the sync thread (sync-thread.ts): for each job, fsync or fdatasync of the descriptor it was
 * given, close it, and write the request's reply (an error as its errno) to /dev/fuse; after `idleMs`
 * without a job, end (see sync-thread.ts for how that agrees with the serving thread).
 *
 * Invariants: every job gets its reply written, whatever fsync did; a reply the kernel refuses (ENOENT:
 * the request was interrupted; ENODEV: the session ended) is fine, and nothing is written to stderr.
 * Only this thread may load this module. UNIONFS_TS_SYNC_DELAY_MS (a test seam) makes each job wait
 * that long first, standing in for a slow disk.
 */
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { toErrno } from "../../errors";
import { closeFd } from "../../sys/libc";
import { outHeader } from "./codec";
import { ENDED, INFLIGHT, RUNNING, STATE, type SyncJob, type SyncWorkerData } from "./sync-thread";

const { devFd, shared, idleMs } = workerData as SyncWorkerData;
const words = new Int32Array(shared);
const delayMs = Number(process.env.UNIONFS_TS_SYNC_DELAY_MS ?? 0);
let idle: NodeJS.Timeout | undefined;

function flush(job: SyncJob): number {
  try {
    if (delayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, delayMs);
    if (job.datasync) fs.fdatasyncSync(job.fd);
    else fs.fsyncSync(job.fd);
    return 0;
  } catch (err) {
    return toErrno(err);
  } finally {
    // Not fs.closeSync: Node warns on stderr when a thread closes a descriptor it did not open.
    try {
      closeFd(job.fd);
    } catch {
      // closed already: nothing to do
    }
  }
}

/** Ends the thread unless a job is on its way (then it goes on running). */
function endIfIdle(): void {
  if (Atomics.compareExchange(words, STATE, RUNNING, ENDED) !== RUNNING) return;
  if (Atomics.load(words, INFLIGHT) > 0) {
    Atomics.store(words, STATE, RUNNING);
    idleAgain();
    return;
  }
  parentPort?.close();
}

function idleAgain(): void {
  clearTimeout(idle);
  idle = setTimeout(endIfIdle, idleMs);
}

parentPort?.on("message", (job: SyncJob) => {
  const errno = flush(job);
  try {
    fs.writeSync(devFd, outHeader(16, errno, job.unique));
  } catch {
    // interrupted (ENOENT) or the session is gone (ENODEV): nobody waits for this reply
  }
  Atomics.sub(words, INFLIGHT, 1);
  idleAgain();
});
Atomics.store(words, STATE, RUNNING);
idleAgain();
