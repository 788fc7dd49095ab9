/**
 * Handlers for directory handles: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR, FSYNCDIR.
 *
 * Invariants:
 * - The kernel's fh is the core's dir handle; the listing is ".", "..", then `ops.readdir(dh)` (the
 *   snapshot taken at opendir), so offsets (see dirents.ts) are stable for the handle's life.
 * - READDIRPLUS looks an entry up only once it is known to fit, and counts one lookup per entry sent
 *   (undone if the reply is refused). "." and ".." go out with node id 0 and no attributes, which the
 *   kernel takes as "no lookup done". An entry that vanished (ENOENT/ENOTDIR) is skipped; one whose
 *   lookup fails otherwise goes out without attributes, leaving the error to a later LOOKUP.
 * - In a directory that was removed (detached node) READDIRPLUS does no lookups at all.
 */
import type { Attr, DirEntry } from "../../unionfs/types";
import { codeOf, isAbsent } from "../../errors";
import type { InHeader, Reader } from "./codec";
import { openOut } from "./codec";
import { DirentWriter, direntType, fillDirents } from "./dirents";
import type { Slot } from "./dirents";
import { joinPath } from "./inodes";
import { DT_DIR, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, Op } from "./protocol";
import { EMPTY } from "./session";
import type { Handler, Session } from "./session";

/** Kernel-visible inode number when none is known (what libfuse uses). */
const UNKNOWN_INO = 0xffffffffn;

const opendir: Handler = (s, h) => {
  const dh = s.ops.opendir(s.table.path(h.nodeid));
  // Listings are stable and every change goes through this mount: let the kernel cache them.
  return { parts: [openOut(dh, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR)], undo: () => s.ops.releasedir(dh) };
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

/** Entry i of the listing of directory node `nodeid`: ".", "..", then `entries`. */
function listing(s: Session, nodeid: number, entries: readonly DirEntry[]): (i: number) => Slot | undefined {
  const node = s.table.get(nodeid);
  const dotIno = node.ino || UNKNOWN_INO;
  const dotdotIno = node.parent?.ino || dotIno;
  return (i) => {
    if (i === 0) return { name: ".", ino: dotIno, type: DT_DIR };
    if (i === 1) return { name: "..", ino: dotdotIno, type: DT_DIR };
    const e = entries[i - 2];
    return e === undefined ? undefined : { name: e.name, ino: e.ino, type: direntType(e.type) };
  };
}

const readdir: Handler = (s, h, r) => {
  const { dh, offset, size } = decodeReaddir(r);
  return { parts: [fillDirents(listing(s, h.nodeid, s.ops.readdir(dh)), offset, size)] };
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
  const slotAt = listing(s, h.nodeid, s.ops.readdir(req.dh));
  const dirPath = s.table.isAttached(h.nodeid) ? s.table.path(h.nodeid) : null;
  const w = new DirentWriter(req.size, true);
  for (let i = req.offset; ; i++) {
    const slot = slotAt(i);
    if (slot === undefined || !w.fits(slot.name.length)) break;
    const attr = i < 2 || dirPath === null ? null : plusLookup(s, joinPath(dirPath, slot.name));
    if (attr === "gone") continue;
    if (attr === null) {
      w.add(slot, i + 1, null);
      continue;
    }
    const node = s.table.lookup(h.nodeid, slot.name, attr.mode, attr.ino);
    counted.push(node.id);
    const entry = { nodeid: node.id, attr, entryTimeout: s.entryTimeout, attrTimeout: s.attrTimeout };
    w.add({ name: slot.name, ino: attr.ino, type: direntType(attr.mode) }, i + 1, entry);
  }
  return w.result();
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
