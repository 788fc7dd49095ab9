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
 * calls `logTo` with the same file (appends of one line are atomic). A thread serving several mounts
 * (hub.ts) keeps one `LogSink` per mount and makes it current (`useLog`) before it serves that mount.
 */
import * as fs from "node:fs";

/** Where a thread's lines go: a descriptor, and whether lines carry a timestamp (a log file's do). */
export interface LogSink {
  fd: number;
  stamped: boolean;
}

/** stderr, unstamped: where lines go until `logTo` or `useLog`. */
export const STDERR_LOG: LogSink = { fd: 2, stamped: false };

let current: LogSink = STDERR_LOG;

/** A sink appending to `file` (created 0640 when missing). */
export function openLog(file: string): LogSink {
  const flags = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT;
  return { fd: fs.openSync(file, flags, 0o640), stamped: true };
}

/** From now on, this thread's lines are appended to `file`. */
export function logTo(file: string): void {
  current = openLog(file);
}

/** Where this thread's lines go now (a thread it starts may log to the same place: `useLog`). */
export function currentLog(): LogSink {
  return current;
}

/** From now on, this thread's lines go to `sink`; returns the one they went to. */
export function useLog(sink: LogSink): LogSink {
  const before = current;
  current = sink;
  return before;
}

export type Level = "error" | "warning" | "info" | "debug";

function stamp(line: string, level: Level): string {
  return `${new Date().toISOString()} unionfs-ts[${process.pid}]: ${level}: ${line}\n`;
}

export function logLine(line: string, level: Level): void {
  const text = current.stamped ? stamp(line, level) : `unionfs-ts: ${line}\n`;
  try {
    fs.writeSync(current.fd, text);
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
