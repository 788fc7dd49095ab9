/**
 * Entry of the background copy thread: copies one file's data per message, then reports on the wake
 * pipe.
 *
 * Invariants: the thread only reads `src` and writes `dst` (descriptors owned by the union's thread,
 * which closes them after the report); each report is one REPORT_SIZE write, atomic on a pipe, carrying
 * the failure's errno (0: done). Every job is reported, whatever happened: nothing here writes to
 * stderr (a background daemon's stderr is a closed pipe, and a write there would throw before the
 * report), and a failure is reported, never thrown. Only this thread may load this module: it listens on
 * its parent port, which would keep any other thread alive.
 */
import * as fs from "node:fs";
import { parentPort } from "node:worker_threads";
import { toErrno } from "../errors";
import { REPORT_SIZE, type CopyJob } from "./background";
import { copyData } from "./copydata";

function run(job: CopyJob): void {
  let errno = 0;
  try {
    copyData(job.src, job.dst, job.size);
    if (job.sync) fs.fdatasyncSync(job.dst);
  } catch (err) {
    errno = toErrno(err);
  }
  const report = Buffer.alloc(REPORT_SIZE);
  report.writeUInt32LE(job.id, 0);
  report.writeUInt32LE(errno, 4);
  fs.writeSync(job.wake, report);
}

parentPort?.on("message", (job: CopyJob) => run(job));
