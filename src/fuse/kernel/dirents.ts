/**
 * READDIR / READDIRPLUS reply building.
 *
 * Invariants:
 * - A listing is ".", "..", then the core's entries in the core's order. Which offset each slot
 *   carries is the caller's (a `Window`): with a directory handle slot i carries i + 1, so a request
 *   with offset o resumes at slot o for the life of the handle; without one, see listings.ts.
 * - A run of slots carrying one offset is never split between two replies, unless it starts one.
 * - Records are 8-byte aligned, padding zeroed; a record is added only if it fits whole in the size the
 *   kernel asked for, so a reply never exceeds it. An empty reply means end of directory.
 * - `DirentWriter` only encodes; deciding what goes in (lookups, skipping vanished entries) is the
 *   dispatcher's job, which asks `fits` before doing any lookup for an entry.
 */
import type { Attr } from "../../unionfs/types";
import { writeEntryOut } from "./codec";
import { DT_UNKNOWN, Size } from "./protocol";

export interface Slot {
  /** Byte string. */
  name: string;
  ino: bigint;
  /** dirent type (DT_*), i.e. the S_IFMT bits >> 12. */
  type: number;
}

export function direntType(mode: number): number {
  return mode ? (mode >>> 12) & 0o17 : DT_UNKNOWN;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

export function direntSize(nameLen: number, plus: boolean): number {
  return align8((plus ? Size.DIRENTPLUS_NAME_OFFSET : Size.DIRENT_NAME_OFFSET) + nameLen);
}

export class DirentWriter {
  private readonly buf: Buffer;
  private used = 0;
  /** Entries added so far. */
  count = 0;

  constructor(
    private readonly max: number,
    private readonly plus: boolean,
  ) {
    this.buf = Buffer.allocUnsafe(max);
  }

  fits(nameLen: number): boolean {
    return this.used + direntSize(nameLen, this.plus) <= this.max;
  }

  /**
   * Appends an entry whose successor has index `nextOff`. For READDIRPLUS, `entry` is the entry_out
   * (null: node id 0 and zeroed attributes, i.e. "no lookup done"). Returns false, adding nothing, when
   * it does not fit.
   */
  add(
    slot: Slot,
    nextOff: number,
    entry?: { nodeid: number; attr: Attr; entryTimeout: number; attrTimeout: number } | null,
  ): boolean {
    const size = direntSize(slot.name.length, this.plus);
    if (this.used + size > this.max) return false;
    let at = this.used;
    if (this.plus) {
      if (entry) writeEntryOut(this.buf, at, entry.nodeid, entry.attr, entry.entryTimeout, entry.attrTimeout);
      else writeEntryOut(this.buf, at, 0, null, 0, 0);
      at += Size.ENTRY_OUT;
    }
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, slot.ino), at);
    this.buf.writeBigUInt64LE(BigInt(nextOff), at + 8);
    this.buf.writeUInt32LE(slot.name.length, at + 16);
    this.buf.writeUInt32LE(slot.type, at + 20);
    const end = at + 24 + this.buf.write(slot.name, at + 24, "latin1");
    this.used += size;
    this.buf.fill(0, end, this.used);
    this.count += 1;
    return true;
  }

  /** Where the reply stands now, for `reset`. */
  mark(): { used: number; count: number } {
    return { used: this.used, count: this.count };
  }

  /** Takes back every entry added since `m` was taken. */
  reset(m: { used: number; count: number }): void {
    this.used = m.used;
    this.count = m.count;
  }

  /** The reply payload (a view of the bytes written). */
  result(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

/** Slots of a listing from `start` on; slot i carries the offset `offsetOf(i)`. */
export interface Window {
  slotAt(i: number): Slot | undefined;
  start: number;
  offsetOf(i: number): number;
}

/**
 * Whether slot `i`, which did not fit, continues a run of slots with one offset that the reply already
 * holds part of (and that did not start the reply): the run must then be taken back whole, since a
 * READDIR resuming at that offset would skip the rest of it (see listings.ts, equal name cookies).
 */
export function splitsRun(win: Window, i: number): boolean {
  return i > win.start && win.offsetOf(i) === win.offsetOf(i - 1);
}

/** Whether slot `i` starts a new run of offsets (see `splitsRun`). */
export function startsRun(win: Window, i: number): boolean {
  return i === win.start || win.offsetOf(i) !== win.offsetOf(i - 1);
}

/** Plain READDIR: encodes the window's slots, as many as fit in `size` bytes. */
export function fillDirents(win: Window, size: number): Buffer {
  const w = new DirentWriter(size, false);
  let run = w.mark();
  for (let i = win.start; ; i++) {
    const slot = win.slotAt(i);
    if (slot === undefined) break;
    if (startsRun(win, i)) run = w.mark();
    if (!w.add(slot, win.offsetOf(i))) {
      if (splitsRun(win, i) && run.count > 0) w.reset(run);
      break;
    }
  }
  return w.result();
}
