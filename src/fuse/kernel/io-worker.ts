/**
 * Entry of an I/O thread (io-threads.ts): for each job, the flush or the read it asks for, then its
 * reply (an error as its errno) written to the job's reply descriptor, then both descriptors closed;
 * after `idleMs` without a job, end (see io-threads.ts for how that agrees with the serving thread).
 *
 * Invariants: every job gets its reply written, whatever the I/O did, and is counted out of INFLIGHT
 * only after that; a reply the kernel refuses (ENOENT: the request was interrupted; ENODEV: the session
 * ended; EPIPE: the io_uring transport that reads the pipe is gone) is fine, and nothing is written to
 * stderr. A large READ's data is spliced from the file to the device (splice.ts), a small one or one
 * the file cannot splice is read into this thread's buffer. Only this thread may load this module.
 * UNIONFS_TS_SYNC_DELAY_MS and UNIONFS_TS_READ_DELAY_MS (test seams) make each FSYNC or READ job wait
 * that long first, standing in for a slow disk.
 */
import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { toErrno } from "../../errors";
import { closeFd } from "../../sys/libc";
import { markEnded, markRunning } from "../../sys/worker-slots";
import { outHeader } from "./codec";
import { ENDED, INFLIGHT, RUNNING, STATE, type IoJob, type IoOrder, type IoWorkerData } from "./io-threads";
import { SPLICE_MIN_BYTES, SpliceReplies } from "./splice";

const { shared, idleMs } = workerData as IoWorkerData;
const words = new Int32Array(shared);
const syncDelayMs = Number(process.env.UNIONFS_TS_SYNC_DELAY_MS ?? 0);
const readDelayMs = Number(process.env.UNIONFS_TS_READ_DELAY_MS ?? 0);
const spliced = new SpliceReplies();
let scratch = Buffer.alloc(0);
let idle: NodeJS.Timeout | undefined;

function pause(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Writes `iov` as one reply; a refused or undeliverable reply is nobody's loss (see the header). */
function send(fd: number, iov: Buffer[]): void {
  try {
    fs.writevSync(fd, iov);
  } catch {
    // interrupted (ENOENT), the session is gone (ENODEV), or the ring's pipe is (EPIPE)
  }
}

function fsync(job: Extract<IoJob, { kind: "fsync" }>): void {
  let errno = 0;
  try {
    pause(syncDelayMs);
    if (job.datasync) fs.fdatasyncSync(job.fd);
    else fs.fsyncSync(job.fd);
  } catch (err) {
    errno = toErrno(err);
  }
  send(job.reply, [outHeader(16, errno, job.unique)]);
}

function read(job: Extract<IoJob, { kind: "read" }>): void {
  pause(readDelayMs);
  try {
    if (job.size >= SPLICE_MIN_BYTES) {
      const n = spliced.fill(job.fd, job.offset, job.size);
      if (n !== undefined) {
        spliced.send(job.reply, job.unique);
        return;
      }
    }
    if (scratch.length < job.size) scratch = Buffer.allocUnsafe(job.size);
    const n = fs.readSync(job.fd, scratch, 0, job.size, job.offset);
    send(job.reply, [outHeader(16 + n, 0, job.unique), scratch.subarray(0, n)]);
  } catch (err) {
    send(job.reply, [outHeader(16, toErrno(err), job.unique)]);
  }
}

function closeAll(job: IoJob): void {
  // Not fs.closeSync: Node warns on stderr when a thread closes a descriptor it did not open.
  for (const fd of [job.fd, job.reply]) {
    try {
      closeFd(fd);
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
  end();
}

function end(): void {
  clearTimeout(idle);
  spliced.close();
  markEnded(words);
}

function idleAgain(): void {
  clearTimeout(idle);
  idle = setTimeout(endIfIdle, idleMs);
}

parentPort?.on("message", (job: IoOrder) => {
  if (job.kind === "stop") return end();
  try {
    if (job.kind === "fsync") fsync(job);
    else read(job);
  } finally {
    closeAll(job);
    Atomics.sub(words, INFLIGHT, 1);
    idleAgain();
  }
});
markRunning(words);
idleAgain();
