/**
 * The transport's log line: "unionfs-ts: …" written synchronously to fd 2 (a busy serving thread never
 * flushes asynchronous streams). Its own module so that the mounting thread can log without loading
 * the request loop.
 */
import * as fs from "node:fs";

export function logLine(line: string): void {
  try {
    fs.writeSync(2, `unionfs-ts: ${line}\n`);
  } catch {
    // stderr is gone; nothing better to do
  }
}
