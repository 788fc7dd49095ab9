/**
 * Handlers for open files, xattrs, statfs and access: OPEN … LSEEK, SETXATTR … REMOVEXATTR.
 *
 * Invariants: a 1:1 call of the matching UnionOps method; file handles are the core's, passed through
 * verbatim; every open handle's I/O mode (cached, passthrough, direct) is chosen and released through
 * `Session.passthrough`; a cached handle keeps the node's pages unless its next read (relatime) or every
 * read (strictatime, direct I/O) must reach the union to change the file's access time (`accessTouch`);
 * a handle opened for a reply the kernel refuses is released again (Reply.undo); buffers handed
 * to the core alias the read buffer only for the duration of a synchronous call (WRITE), anything the
 * core might keep (xattr values) is copied.
 */
import { constants } from "node:os";
import { fsError } from "../../errors";
import { entryOut, lseekOut, openOut, sizeOut, statfsOut, type InHeader } from "./codec";
import { withIno } from "./inodes";
import { readWouldWait, type IoJob } from "./io-threads";
import { CACHED, CONFLICT, type OpenMode } from "./passthrough";
import {
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  FSYNC_FDATASYNC,
  Init,
  OPEN_KILL_SUIDGID,
  Op,
  SETXATTR_ACL_KILL_SGID,
  WRITE_KILL_SUIDGID,
} from "./protocol";
import { EMPTY, creatorOf, errnoReply } from "./session";
import { SPLICE_MIN_BYTES } from "./splice";
import type { Handler, Reply, Session } from "./session";

/**
 * The open reply's mode for a new handle: passthrough when both the kernel and the core allow it.
 * `known`: the kernel may have cached the node's attributes before this request (not so for a node that
 * CREATE made: the kernel learns of it from the reply, and an invalidation would be refused).
 */
function openMode(s: Session, nodeid: number, fh: number, known = true): OpenMode {
  if (s.passthrough === null) return cachedMode(s, fh);
  const backing = s.passthrough.active ? s.ops.passthrough?.(fh) : undefined;
  const entering = !s.passthrough.passing(nodeid);
  const mode = s.passthrough.open(nodeid, fh, backing);
  // Attributes cached for a day before would hide what a shared mapping writes (passthrough.ts).
  if (known && entering && s.passthrough.passing(nodeid)) s.attrsStale(nodeid);
  return mode === CACHED ? cachedMode(s, fh) : mode;
}

/**
 * A handle the daemon serves: its reads come from the page cache, except where one must reach the
 * union to change the file's access time: the next (cached pages dropped at open) or every one (direct
 * I/O, strictatime). A passed-through handle needs nothing: the kernel reads the backing file, which
 * the core opened so that its access time follows the mount's mode.
 */
function cachedMode(s: Session, fh: number): OpenMode {
  const touch = s.ops.accessTouch?.(fh) ?? "none";
  if (touch === "next") return { flags: CACHED.flags & ~FOPEN_KEEP_CACHE, backingId: 0 };
  if (touch === "every") return { flags: (CACHED.flags & ~FOPEN_KEEP_CACHE) | FOPEN_DIRECT_IO, backingId: 0 };
  return CACHED;
}

function closeHandle(s: Session, nodeid: number, fh: number): void {
  s.closed(nodeid, fh);
  s.passthrough?.release(fh);
  s.ops.release(fh);
}

/**
 * Registers the new handle `fh` of `nodeid` and chooses its I/O mode; any failure closes the handle
 * again (and runs `forget`: a node CREATE made) before it is thrown. A handle the daemon serves is
 * published for the io_uring queue threads' READs (a passed-through one sends none).
 */
function startHandle(
  s: Session,
  nodeid: number,
  fh: number,
  openFlags: number,
  known: boolean,
  forget?: () => void,
): OpenMode {
  s.opened(nodeid, fh);
  let io: OpenMode;
  try {
    if (openFlags & OPEN_KILL_SUIDGID) s.killedSuidgid(nodeid, fh);
    io = openMode(s, nodeid, fh, known);
  } catch (err) {
    closeHandle(s, nodeid, fh);
    forget?.();
    throw err;
  }
  if (io === CONFLICT) {
    // The node passes through to the lower file and this open got the copy: open a fresh node instead.
    closeHandle(s, nodeid, fh);
    forget?.();
    s.table.retire(nodeid);
    throw fsError("ESTALE", "node is passed through to the file before its copy-up");
  }
  if (io.backingId === 0) s.publishRead(fh);
  return io;
}

const open: Handler = (s, h, r) => {
  const flags = r.u32();
  const openFlags = r.u32();
  const fh = s.ops.open(s.table.path(h.nodeid), flags);
  const io = startHandle(s, h.nodeid, fh, openFlags, true);
  return {
    parts: [openOut(fh, io.flags, io.backingId)],
    undo: () => closeHandle(s, h.nodeid, fh),
  };
};

const create: Handler = (s, h, r) => {
  const flags = r.u32();
  const mode = r.u32();
  const umask = r.u32();
  const openFlags = r.u32();
  const name = r.name();
  const { fh, attr } = s.ops.create(s.table.childPath(h.nodeid, name), flags, mode, creatorOf(s, h, umask));
  const node = s.table.lookup(h.nodeid, name, attr);
  const forget = (): void => void s.table.forget(node.id, 1);
  const io = startHandle(s, node.id, fh, openFlags, node.lookups > 1, forget); // 1: new to the kernel
  return {
    parts: [
      entryOut(node.id, withIno(attr, node.ino), s.entryTimeout, s.attrTimeoutFor(node.id)),
      openOut(fh, io.flags, io.backingId),
    ],
    undo: () => {
      closeHandle(s, node.id, fh);
      forget();
    },
  };
};

/**
 * READ: a large one that would wait for the disk on an I/O thread when one is free (it answers;
 * io-threads.ts), so it holds up no other request; else here, spliced when large. (Over io_uring with
 * a thread per CPU, most READs never come here: direct-reads.ts.)
 */
const read: Handler = (s, h, r) => {
  const fh = r.id();
  const offset = r.u64();
  const size = r.u32();
  s.publishRead(fh); // the queue threads sent it here: its slot was taken, or the epoch has moved
  const fd = size >= SPLICE_MIN_BYTES ? s.ops.readFd?.(fh) : undefined;
  if (fd !== undefined) {
    if (s.readsOnThreads && readWouldWait(fd, offset, size) && s.io?.take(readJob(s, h, fd, offset, size)))
      return null;
    const spliced = s.splice?.fill(fd, offset, size);
    if (spliced !== undefined) return { parts: [], spliced };
  }
  if (s.ops.readInto === undefined) return { parts: [s.ops.read(fh, size, offset)] };
  const buf = s.readBuffer(size);
  return { parts: [buf.subarray(0, s.ops.readInto(fh, buf, offset))] };
};

function readJob(s: Session, h: InHeader, fd: number, offset: bigint, size: number): IoJob {
  return { kind: "read", fd, reply: s.replyFd, unique: h.unique, offset, size };
}

const write: Handler = (s, h, r) => {
  const fh = r.id();
  s.touch(h.nodeid);
  const offset = r.u64();
  const size = r.u32();
  const writeFlags = r.u32();
  r.skip(16); // lock_owner, flags, padding
  const written = s.ops.write(fh, r.bytes(size), offset);
  if (writeFlags & WRITE_KILL_SUIDGID) s.killedSuidgid(h.nodeid, fh);
  return { parts: [sizeOut(written)] };
};

const flush: Handler = (s, _h, r) => {
  s.ops.flush(r.id());
  return EMPTY;
};

const release: Handler = (s, h, r) => {
  closeHandle(s, h.nodeid, r.id());
  return EMPTY;
};

/** FSYNC: on an I/O thread once one runs (it answers; io-threads.ts), else here. */
const fsync: Handler = (s, h, r) => {
  const fh = r.id();
  const datasync = (r.u32() & FSYNC_FDATASYNC) !== 0;
  if (s.io !== null && s.ops.syncFd !== undefined) {
    const fd = s.ops.syncFd(fh);
    if (fd === undefined) return EMPTY;
    if (s.io.take({ kind: "fsync", fd, reply: s.replyFd, unique: h.unique, datasync })) return null;
  }
  s.ops.fsync(fh, datasync);
  return EMPTY;
};

const fallocate: Handler = (s, h, r) => {
  const fh = r.id();
  const offset = r.u64();
  const length = r.u64();
  s.ops.fallocate(fh, r.u32(), offset, length);
  // The kernel leaves set-id bits to the daemon here and says nothing of the caller's CAP_FSETID: as
  // for a write, anyone but root loses them (overlayfs and a plain filesystem clear them).
  if (h.uid !== 0) s.killedSuidgid(h.nodeid, fh);
  return EMPTY;
};

const lseek: Handler = (s, _h, r) => {
  const fh = r.id();
  const offset = r.u64();
  return { parts: [lseekOut(s.ops.lseek(fh, offset, r.u32()))] };
};

const statfs: Handler = (s, h) => ({ parts: [statfsOut(s.ops.statfs(s.table.path(h.nodeid)))] });

const access: Handler = (s, h, r) => {
  s.ops.access(s.table.path(h.nodeid), r.u32());
  return EMPTY;
};

const setxattr: Handler = (s, h, r) => {
  const size = r.u32();
  const flags = r.u32();
  let killSgid = false;
  if (s.neg !== null && (s.neg.flags & Init.SETXATTR_EXT) !== 0) {
    killSgid = (r.u32() & SETXATTR_ACL_KILL_SGID) !== 0;
    r.skip(4); // padding
  }
  const name = r.name();
  s.xattrsChanged(h.nodeid);
  s.ops.setxattr(s.table.path(h.nodeid), name, Buffer.from(r.bytes(size)), flags, { killSgid });
  if (killSgid) s.touchSelf(h.nodeid);
  return EMPTY;
};

/** getxattr/listxattr size protocol: size 0 asks for the length; too small a size is ERANGE. */
export function sizedReply(value: Buffer, size: number): Reply {
  if (size === 0) return { parts: [sizeOut(value.length)] };
  if (value.length > size) throw fsError("ERANGE", `value is ${value.length} bytes, buffer ${size}`);
  return { parts: [value] };
}

const NO_DATA = errnoReply(constants.errno.ENODATA);

const getxattr: Handler = (s, h, r) => {
  const size = r.u32();
  r.skip(4);
  const name = r.name();
  if (s.hasNoXattrs(h.nodeid)) return NO_DATA;
  const value = s.ops.getxattr(s.table.path(h.nodeid), name);
  return value === undefined ? NO_DATA : sizedReply(value, size);
};

const listxattr: Handler = (s, h, r) => {
  const size = r.u32();
  const names = s.ops.listxattr(s.table.path(h.nodeid));
  return sizedReply(Buffer.from(names.map((n) => `${n}\0`).join(""), "latin1"), size);
};

const removexattr: Handler = (s, h, r) => {
  s.xattrsChanged(h.nodeid);
  s.ops.removexattr(s.table.path(h.nodeid), r.name());
  return EMPTY;
};

export const fileHandlers: ReadonlyMap<number, Handler> = new Map([
  [Op.OPEN, open],
  [Op.CREATE, create],
  [Op.READ, read],
  [Op.WRITE, write],
  [Op.FLUSH, flush],
  [Op.RELEASE, release],
  [Op.FSYNC, fsync],
  [Op.FALLOCATE, fallocate],
  [Op.LSEEK, lseek],
  [Op.STATFS, statfs],
  [Op.ACCESS, access],
  [Op.SETXATTR, setxattr],
  [Op.GETXATTR, getxattr],
  [Op.LISTXATTR, listxattr],
  [Op.REMOVEXATTR, removexattr],
]);
