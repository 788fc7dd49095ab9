/**
 * The daemon's log: one line per event, written synchronously (a busy serving thread never flushes
 * asynchronous streams). Its own module so that the mounting thread can log without loading the
 * request loop.
 *
 * Invariants: logging never throws and never depends on stderr being open. Lines go to stderr as
 * "unionfs-ts: …" until `logTo(FILE)` is called in a thread; from then on that thread appends them to
 * FILE, each with an ISO timestamp and the pid ("2026-12-05T02:20:00.123Z unionfs-ts[42]: …"). Every
 * thread of a daemon calls `logTo` with the same file (appends of one line are atomic).
 */
import * as fs from "node:fs";

let sink = 2;
let stamped = false;

/** From now on, this thread's lines are appended to `file` (created 0640 when missing). */
export function logTo(file: string): void {
  sink = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
  stamped = true;
}

function stamp(line: string): string {
  return `${new Date().toISOString()} unionfs-ts[${process.pid}]: ${line}\n`;
}

export function logLine(line: string): void {
  const text = stamped ? stamp(line) : `unionfs-ts: ${line}\n`;
  try {
    fs.writeSync(sink, text);
  } catch {
    // the log is gone; nothing better to do
  }
}

/** Appends one timestamped line to `file` whatever this thread's log is (a process serving several). */
export function logLineTo(file: string, line: string): void {
  try {
    fs.appendFileSync(file, stamp(line), { mode: 0o640 });
  } catch {
    // the log is gone; nothing better to do
  }
}
