/**
 * Handlers for directory handles: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
 *
 * Invariants:
 * - When the kernel offers zero-message opendir, OPENDIR answers ENOSYS (the kernel then never sends
 *   OPENDIR/RELEASEDIR again) and READDIR comes with fh 0: the listing is the node's (listings.ts).
 *   Otherwise the kernel's fh is the core's dir handle and its listing is the snapshot the core took,
 *   so offsets (see dirents.ts) are stable for the handle's life. Either way the kernel may cache it,
 *   except when every listing changes the directory's access time (strictatime): then no zero-message
 *   opendir (init.ts) and no cached listing.
 * - READDIRPLUS looks an entry up only once it is known to fit, and counts one lookup per entry sent
 *   (undone if the reply is refused). "." and ".." go out with node id 0 and no attributes, which the
 *   kernel takes as "no lookup done". An entry that vanished (ENOENT/ENOTDIR) is skipped; one whose
 *   lookup fails otherwise goes out without attributes, leaving the error to a later LOOKUP.
 * - In a directory that was removed (detached node) READDIRPLUS does no lookups at all. A READDIRPLUS
 *   from the start of a listing first tells the union its entries are about to be looked up, so it can
 *   warm its layers for them (UnionOps.prefetchEntries).
 */
import type { Attr, DirEntry } from "../../unionfs/types";
import { UNKNOWN_INO } from "../../unionfs/listing";
import { codeOf, fsError, isAbsent } from "../../errors";
import type { InHeader, Reader } from "./codec";
import { openOut } from "./codec";
import { DirentWriter, direntType, fillDirents, splitsRun, startsRun } from "./dirents";
import type { Slot, Window } from "./dirents";
import { joinPath, withIno } from "./inodes";
import { DOTS, offsetOfSlot } from "./listings";
import { DT_DIR, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, Op } from "./protocol";
import { EMPTY } from "./session";
import type { Handler, Session } from "./session";

const opendir: Handler = (s, h) => {
  if (s.zeroMessageOpendir) throw fsError("ENOSYS", "zero-message opendir");
  const dh = s.ops.opendir(s.table.path(h.nodeid));
  // Listings are stable and every change goes through this mount: let the kernel cache them, unless
  // each listing must reach the union to change the directory's access time (strictatime).
  const flags = s.ops.listingsTouchEveryTime?.() === true ? 0 : FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR;
  return { parts: [openOut(dh, flags)], undo: () => s.ops.releasedir(dh) };
};

const releasedir: Handler = (s, _h, r) => {
  s.ops.releasedir(r.id());
  return EMPTY;
};

const fsyncdir: Handler = () => EMPTY;

interface ReaddirIn {
  dh: number;
  offset: number;
  size: number;
}

function decodeReaddir(r: Reader): ReaddirIn {
  const dh = r.id();
  const offset = r.u64();
  const size = r.u32();
  return {
    dh,
    offset: offset > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(offset),
    size,
  };
}

/**
 * The inode number `stat` reports for `name` in directory node `nodeid` (path `dirPath`, null once
 * removed): the kernel's live node for it when there is one, else the union's answer; `fallback` when the
 * name is gone meanwhile.
 */
function entryIno(
  s: Session,
  nodeid: number,
  dirPath: string | null,
  name: string,
  fallback: bigint,
): bigint {
  const known = s.table.liveChild(nodeid, name); // a forgotten tree link has no node in the kernel
  if (known !== undefined) return known.ino;
  if (dirPath === null) return fallback;
  try {
    return s.ops.getattr(joinPath(dirPath, name)).ino;
  } catch (err) {
    if (codeOf(err) === undefined) throw err;
    return fallback;
  }
}

/**
 * Slot i of the listing of directory node `nodeid`: ".", "..", then `entries`. With `exactIno` (plain
 * READDIR, whose d_ino is all a caller like `ls -i` or `find -inum` gets) every entry carries the inode
 * number `stat` reports; READDIRPLUS sets it from the attributes it looks up anyway.
 */
function slots(
  s: Session,
  nodeid: number,
  entries: readonly DirEntry[],
  exactIno = false,
): (i: number) => Slot | undefined {
  const dotIno = s.table.get(nodeid).ino || UNKNOWN_INO;
  const dotdotIno = s.table.parentIno(nodeid) || dotIno;
  const dirPath = exactIno && s.table.isAttached(nodeid) ? s.table.path(nodeid) : null;
  return (i) => {
    if (i === 0) return { name: ".", ino: dotIno, type: DT_DIR };
    if (i === 1) return { name: "..", ino: dotdotIno, type: DT_DIR };
    const e = entries[i - DOTS];
    if (e === undefined) return undefined;
    const ino = exactIno ? entryIno(s, nodeid, dirPath, e.name, e.ino) : e.ino;
    return { name: e.name, ino, type: direntType(e.type) };
  };
}

/** The current listing of a directory, as a handle-less READDIR sees it; empty once it was removed. */
function nodeListing(s: Session, nodeid: number): readonly DirEntry[] {
  if (!s.table.isAttached(nodeid)) return [];
  const dh = s.ops.opendir(s.table.path(nodeid));
  try {
    return s.ops.readdir(dh);
  } finally {
    s.ops.releasedir(dh);
  }
}

/** What a READDIR(PLUS) reads: the handle's snapshot, or (fh 0) the node's listing. */
function windowOf(s: Session, h: InHeader, req: ReaddirIn, plus: boolean): Window & { atEnd(): void } {
  if (req.dh !== 0) {
    const slotAt = slots(s, h.nodeid, s.ops.readdir(req.dh), !plus);
    return { slotAt, start: req.offset, offsetOf: (i) => i + 1, atEnd: () => undefined };
  }
  const { snap, start } = s.listings.window(h.nodeid, req.offset, () => nodeListing(s, h.nodeid));
  return {
    slotAt: slots(s, h.nodeid, snap.entries, !plus),
    start,
    offsetOf: (i) => offsetOfSlot(snap, i),
    atEnd: () => s.listings.ended(h.nodeid),
  };
}

const readdir: Handler = (s, h, r) => {
  const req = decodeReaddir(r);
  const win = windowOf(s, h, req, false);
  const body = fillDirents(win, req.size);
  if (body.length === 0) win.atEnd();
  return { parts: [body] };
};

/** getattr for READDIRPLUS: the attributes, "gone" (skip the entry), or null (send it without). */
function plusLookup(s: Session, path: string): Attr | "gone" | null {
  try {
    return s.ops.getattr(path);
  } catch (err) {
    if (isAbsent(err)) return "gone";
    if (codeOf(err) !== undefined) return null;
    throw err;
  }
}

function readdirplusBody(s: Session, h: InHeader, req: ReaddirIn, counted: number[]): Buffer {
  const win = windowOf(s, h, req, true);
  const dirPath = s.table.isAttached(h.nodeid) ? s.table.path(h.nodeid) : null;
  if (req.offset === 0 && dirPath !== null) s.ops.prefetchEntries?.(dirPath);
  const w = new DirentWriter(req.size, true);
  let run = { at: w.mark(), counted: 0 };
  for (let i = win.start; ; i++) {
    const slot = win.slotAt(i);
    if (slot === undefined) break;
    if (startsRun(win, i)) run = { at: w.mark(), counted: counted.length };
    if (!w.fits(slot.name.length)) {
      if (splitsRun(win, i) && run.at.count > 0) {
        w.reset(run.at);
        for (const id of counted.splice(run.counted)) s.table.forget(id, 1);
      }
      break;
    }
    const known = i < DOTS || dirPath === null ? undefined : s.freshChild(h.nodeid, slot.name);
    if (known !== undefined) {
      w.add({ name: slot.name, ino: known.ino, type: direntType(known.type) }, win.offsetOf(i), null);
      continue;
    }
    const attr = i < DOTS || dirPath === null ? null : plusLookup(s, joinPath(dirPath, slot.name));
    if (attr === "gone") continue;
    if (attr === null) {
      w.add(slot, win.offsetOf(i), null);
      continue;
    }
    const node = s.table.lookup(h.nodeid, slot.name, attr);
    counted.push(node.id);
    const shown = withIno(attr, node.ino);
    const entry = {
      nodeid: node.id,
      attr: shown,
      entryTimeout: s.entryTimeout,
      attrTimeout: s.attrTimeoutFor(node.id),
    };
    w.add({ name: slot.name, ino: shown.ino, type: direntType(attr.mode) }, win.offsetOf(i), entry);
  }
  const body = w.result();
  if (body.length === 0) win.atEnd();
  return body;
}

const readdirplus: Handler = (s, h, r) => {
  const counted: number[] = [];
  const undo = (): void => counted.forEach((id) => s.table.forget(id, 1));
  try {
    return { parts: [readdirplusBody(s, h, decodeReaddir(r), counted)], undo };
  } catch (err) {
    undo();
    throw err;
  }
};

export const dirHandlers: ReadonlyMap<number, Handler> = new Map([
  [Op.OPENDIR, opendir],
  [Op.READDIR, readdir],
  [Op.READDIRPLUS, readdirplus],
  [Op.RELEASEDIR, releasedir],
  [Op.FSYNCDIR, fsyncdir],
]);
