/**
 * The ring the serving thread and the page-invalidation thread share (notifier.ts, notify-thread.ts):
 * fixed-size slots for FUSE_NOTIFY_INVAL_INODE messages, and two counters.
 *
 * Invariants: `HEAD` (slots published, written by the serving thread only) and `DONE` (slots written
 * to the device, by the invalidation thread only) only grow; slot n lives at n mod SLOTS; the producer
 * never publishes more than SLOTS ahead of `DONE`.
 */
import * as fs from "node:fs";
import { codeOf } from "../../errors";
import { logLine } from "./log";

export const HEAD = 0;
export const DONE = 1;
/** Set to 1 by the invalidation thread once it runs. */
export const READY = 2;
export const SLOTS = 256;
/** Bytes of one notification (fuse_out_header + fuse_notify_inval_inode_out). */
export const SLOT_SIZE = 40;

export interface RingData {
  fd: number;
  ctrl: SharedArrayBuffer;
  ring: SharedArrayBuffer;
}

export function newRing(fd: number): RingData {
  return {
    fd,
    ctrl: new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT),
    ring: new SharedArrayBuffer(SLOTS * SLOT_SIZE),
  };
}

/** The bytes of slot `n`. */
export function ringSlot(ring: SharedArrayBuffer, n: number): Uint8Array {
  return new Uint8Array(ring, (n % SLOTS) * SLOT_SIZE, SLOT_SIZE);
}

/**
 * Writes one notification to /dev/fuse. ENOENT (the kernel no longer knows the node) and ENODEV (the
 * session ended) are fine; anything else is logged, never thrown.
 */
export function writeNotification(fd: number, msg: Uint8Array): void {
  try {
    fs.writeSync(fd, msg);
  } catch (err) {
    const code = codeOf(err);
    if (code !== "ENOENT" && code !== "ENODEV")
      logLine(`notification rejected by the kernel: ${String(err)}`, "warning");
  }
}
