/**
 * Handlers for name and attribute requests: LOOKUP … LINK, FORGET, GETATTR, SETATTR.
 *
 * Invariants: each handler is a 1:1 call of the matching UnionOps method on paths derived from the inode
 * table; every reply carrying an entry_out adds exactly one lookup to that node and undoes it on failure;
 * the table is changed only after the core call succeeded. LOOKUP of "." and ".." (file handles) is
 * export.ts's.
 */
import type { Attr } from "../../unionfs/types";
import { RENAME_EXCHANGE } from "../../unionfs/types";
import { bytesOf } from "../../sys/bytes";
import { codeOf } from "../../errors";
import { attrOut, decodeSetattr, entryOut } from "./codec";
import type { Reader } from "./codec";
import { withIno } from "./inodes";
import { lookupDot, lookupDotdot } from "./export";
import { GETATTR_FH, Op } from "./protocol";
import { EMPTY, callerOf, creatorOf } from "./session";
import type { Handler, Reply, Session } from "./session";

/** Attributes of a negative entry (nodeid 0): never looked at by the kernel. */
const NO_ATTR: Attr = {
  ino: 0n,
  size: 0n,
  blocks: 0n,
  atimeNs: 0n,
  mtimeNs: 0n,
  ctimeNs: 0n,
  mode: 0,
  nlink: 0,
  uid: 0,
  gid: 0,
  rdev: 0,
  blksize: 0,
};

/** entry_out for `name` in `parentId`, counting one lookup. */
export function entryReply(s: Session, parentId: number, name: string, attr: Attr): Reply {
  const node = s.table.lookup(parentId, name, attr);
  return {
    parts: [entryOut(node.id, withIno(attr, node.ino), s.entryTimeout, s.attrTimeoutFor(node.id))],
    undo: () => s.table.forget(node.id, 1),
  };
}

function attrReply(s: Session, nodeid: number, attr: Attr): Reply {
  return { parts: [attrOut(withIno(attr, s.table.pin(nodeid, attr.ino)), s.attrTimeoutFor(nodeid))] };
}

const lookup: Handler = (s, h, r) => {
  const name = r.name();
  // Only the kernel's export operations send these (file handles): the VFS resolves "." and ".." itself.
  if (name === ".") return lookupDot(s, h.nodeid);
  if (name === "..") return lookupDotdot(s, h.nodeid);
  let attr: Attr | undefined;
  try {
    const path = s.table.childPath(h.nodeid, name);
    attr = s.ops.lookup ? s.ops.lookup(path) : s.ops.getattr(path);
  } catch (err) {
    if (codeOf(err) !== "ENOENT") throw err;
  }
  // A negative entry the kernel may cache: every later creation of the name goes through it.
  if (attr === undefined) return { parts: [entryOut(0, NO_ATTR, s.entryTimeout, 0)] };
  return entryReply(s, h.nodeid, name, attr);
};

const forget: Handler = (s, h, r) => {
  s.table.forget(h.nodeid, Number(r.u64()));
  return null;
};

const batchForget: Handler = (s, _h, r) => {
  const count = r.u32();
  r.skip(4);
  for (let i = 0; i < count; i++) {
    const id = r.id();
    s.table.forget(id, Number(r.u64()));
  }
  return null;
};

const getattr: Handler = (s, h, r) => {
  const flags = r.u32();
  r.skip(4);
  const fh = r.id();
  const t = s.target(h.nodeid, flags & GETATTR_FH ? fh : undefined);
  return attrReply(s, h.nodeid, t.fh !== undefined ? s.ops.getattr(t.path, t.fh) : s.ops.getattr(t.path));
};

const setattr: Handler = (s, h, r) => {
  const { req, fh } = decodeSetattr(r);
  const t = s.target(h.nodeid, fh);
  s.touch(h.nodeid);
  return attrReply(
    s,
    h.nodeid,
    t.fh !== undefined ? s.ops.setattr(t.path, req, t.fh) : s.ops.setattr(t.path, req),
  );
};

const readlink: Handler = (s, h) => ({ parts: [bytesOf(s.ops.readlink(s.table.path(h.nodeid)))] });

const symlink: Handler = (s, h, r) => {
  const name = r.name();
  const target = r.name();
  const attr = s.ops.symlink(target, s.table.childPath(h.nodeid, name), callerOf(h));
  return entryReply(s, h.nodeid, name, attr);
};

const mknod: Handler = (s, h, r) => {
  const mode = r.u32();
  const rdev = r.u32();
  const umask = r.u32();
  r.skip(4); // padding
  const name = r.name();
  const attr = s.ops.mknod(s.table.childPath(h.nodeid, name), mode, rdev, creatorOf(s, h, umask));
  return entryReply(s, h.nodeid, name, attr);
};

const mkdir: Handler = (s, h, r) => {
  const mode = r.u32();
  const umask = r.u32();
  const name = r.name();
  const attr = s.ops.mkdir(s.table.childPath(h.nodeid, name), mode, creatorOf(s, h, umask));
  return entryReply(s, h.nodeid, name, attr);
};

const unlink: Handler = (s, h, r) => {
  const name = r.name();
  s.touch(s.table.childId(h.nodeid, name));
  s.ops.unlink(s.table.childPath(h.nodeid, name));
  s.table.removed(h.nodeid, name);
  return EMPTY;
};

const rmdir: Handler = (s, h, r) => {
  const name = r.name();
  s.ops.rmdir(s.table.childPath(h.nodeid, name));
  s.table.removed(h.nodeid, name);
  return EMPTY;
};

function doRename(s: Session, oldParent: number, r: Reader, newParent: number, flags: number): Reply {
  const oldName = r.name();
  const newName = r.name();
  const from = s.table.childPath(oldParent, oldName);
  const to = s.table.childPath(newParent, newName);
  s.touch(s.table.childId(newParent, newName));
  s.ops.rename(from, to, flags);
  s.table.renamed(oldParent, oldName, newParent, newName, (flags & RENAME_EXCHANGE) !== 0);
  return EMPTY;
}

const rename: Handler = (s, h, r) => {
  const newdir = r.id();
  return doRename(s, h.nodeid, r, newdir, 0);
};

const rename2: Handler = (s, h, r) => {
  const newdir = r.id();
  const flags = r.u32();
  r.skip(4);
  return doRename(s, h.nodeid, r, newdir, flags);
};

const link: Handler = (s, h, r) => {
  const oldId = r.id();
  const name = r.name();
  const attr = s.ops.link(s.table.path(oldId), s.table.childPath(h.nodeid, name));
  // The kernel keeps a separate inode for each name: the old one's link count is now stale.
  s.touchSelf(oldId);
  return entryReply(s, h.nodeid, name, attr);
};

export const entryHandlers: ReadonlyMap<number, Handler> = new Map([
  [Op.LOOKUP, lookup],
  [Op.FORGET, forget],
  [Op.BATCH_FORGET, batchForget],
  [Op.GETATTR, getattr],
  [Op.SETATTR, setattr],
  [Op.READLINK, readlink],
  [Op.SYMLINK, symlink],
  [Op.MKNOD, mknod],
  [Op.MKDIR, mkdir],
  [Op.UNLINK, unlink],
  [Op.RMDIR, rmdir],
  [Op.RENAME, rename],
  [Op.RENAME2, rename2],
  [Op.LINK, link],
]);
