/**
 * The daemon's log: one line per event, written synchronously (a busy serving thread never flushes
 * asynchronous streams). Its own module so that the mounting thread can log without loading the
 * request loop.
 *
 * Invariants: logging never throws and never depends on stderr being open. Every line has a level:
 * "error" (something failed that should not have: an unexpected error, a failed copy-up), "warning"
 * (the daemon coped: a reply or notification the kernel refused), "info" (start, end, what serves) or
 * "debug" (`-o debug`: every request). Lines go to stderr as "unionfs-ts: …" until `logTo(FILE)` is
 * called in a thread; from then on that thread appends them to FILE, each with an ISO timestamp, the
 * pid and the level ("2026-12-05T02:20:00.123Z unionfs-ts[42]: error: …"). Every thread of a daemon
 * calls `logTo` with the same file (appends of one line are atomic).
 */
import * as fs from "node:fs";

let sink = 2;
let stamped = false;

/** From now on, this thread's lines are appended to `file` (created 0640 when missing). */
export function logTo(file: string): void {
  sink = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
  stamped = true;
}

export type Level = "error" | "warning" | "info" | "debug";

function stamp(line: string, level: Level): string {
  return `${new Date().toISOString()} unionfs-ts[${process.pid}]: ${level}: ${line}\n`;
}

export function logLine(line: string, level: Level): void {
  const text = stamped ? stamp(line, level) : `unionfs-ts: ${line}\n`;
  try {
    fs.writeSync(sink, text);
  } catch {
    // the log is gone; nothing better to do
  }
}

/** A logger of `level` lines, for code that takes a `(line) => void`. */
export function logAt(level: Level): (line: string) => void {
  return (line) => logLine(line, level);
}

/** Appends one timestamped line to `file` whatever this thread's log is (a process serving several). */
export function logLineTo(file: string, line: string, level: Level): void {
  try {
    fs.appendFileSync(file, stamp(line, level), { mode: 0o640 });
  } catch {
    // the log is gone; nothing better to do
  }
}
