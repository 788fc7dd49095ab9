/**
 * Per-mount state shared by the request handlers, and the handler/reply types.
 *
 * Invariants: one Session per mount, used by one thread only; `ops.destroy()` runs at most once;
 * the data of a READ reply lives in one buffer shared by all READs of the thread, whatever their
 * session (valid until the thread's next request);
 * a Reply's `undo` reverses every side effect of building it (lookup counts added, handles opened) and
 * runs only when the kernel refused the reply (the request had been interrupted). A handler that returns
 * null sends nothing: the request needs no reply (FORGET) or an I/O thread answers it (FSYNC, a large
 * READ: io-threads.ts).
 * What GETXATTR and READDIRPLUS take as known about a node (`hasNoXattrs`, `freshChild`) holds only
 * while every change goes through the mount.
 * The open file handles of each node are tracked (OPEN/CREATE to RELEASE) so that attribute requests on a
 * removed-but-open file, which the kernel sends without a handle (fstat, fchmod), can use one.
 */
import type { Caller, UnionOps } from "../../unionfs/types";
import type { InHeader, Reader } from "./codec";
import type { Negotiated } from "./init";
import { clockS, InodeTable, Xattrs, type NodeInfo } from "./inodes";
import { DirListings } from "./listings";
import { Passthrough, deviceIoctls } from "./passthrough";
import { SpliceReplies } from "./splice";
import { ioThreads, type IoThreads } from "./io-threads";
import type { DirectReads } from "./direct-reads";
import { ATTR_TIMEOUT_S, ENTRY_TIMEOUT_S, Init, Init2 } from "./protocol";

export interface Reply {
  parts: Buffer[];
  /** The reply's data is this many bytes waiting in the session's splice pipe (splice.ts), not `parts`. */
  spliced?: number;
  /**
   * An errno answered without a throw (no parts then): for outcomes that are not failures and come on
   * hot paths (no such attribute), where V8 never optimizes a function it always leaves by a throw.
   */
  errno?: number;
  undo?: () => void;
}

export const EMPTY: Reply = { parts: [] };

/** Shorter cache timeouts than this (`timeout=`) make READDIRPLUS always send attributes. */
const FRESH_MIN_S = 1;

const errnoReplies = new Map<number, Reply>();

/** What READ replies are read into (`readBuffer`): one per thread, whichever sessions it serves. */
let readScratch = Buffer.alloc(0);

/** The reply that answers `errno` (one shared object per errno). */
export function errnoReply(errno: number): Reply {
  let reply = errnoReplies.get(errno);
  if (reply === undefined) errnoReplies.set(errno, (reply = Object.freeze({ parts: [], errno })));
  return reply;
}

/** Builds the reply to one request, or null for requests that get none; throws errno errors. */
export type Handler = (s: Session, h: InHeader, r: Reader) => Reply | null;

export interface SessionOptions {
  entryTimeout?: number;
  attrTimeout?: number;
  /** The /dev/fuse descriptor, for passthrough's backing-file ioctls; without it there is no passthrough. */
  devFd?: number;
  /** Ask the kernel for passthrough (default: yes, when `devFd` is given). */
  passthrough?: boolean;
  /** Splice large READ replies from the file to `devFd` (default: yes, when `devFd` is given). */
  splice?: boolean;
  /** FSYNC and large READs on I/O threads that answer on `devFd` (default: yes, when `devFd` is given). */
  ioThreads?: boolean;
  /** Serve through io_uring when the kernel offers it (default: no; needs `devFd`). */
  uring?: boolean;
  log?: (line: string) => void;
}

export class Session {
  readonly table = new InodeTable();
  readonly entryTimeout: number;
  readonly attrTimeout: number;
  neg: Negotiated | null = null;
  /** Set at INIT; passes nothing through unless the kernel granted FUSE_PASSTHROUGH. */
  passthrough: Passthrough | null = null;
  private destroyed = false;
  /** Nodes changed by the current request whose other names (hard links) must be invalidated. */
  private readonly touched = new Set<number>();
  /** Nodes whose own cached attributes the current request made stale without the kernel knowing
   * (invalidated before the reply, see `takeStale`). */
  private readonly stale = new Set<number>();
  private readonly openFiles = new Map<number, Set<number>>();
  /** Listings for READDIR without a handle (zero-message opendir). */
  readonly listings = new DirListings();
  /** Large READ replies spliced to the device, where there is one (the kernel transport). */
  splice: SpliceReplies | null;
  /** This thread's I/O threads, where there is a device to answer on (the kernel transport). */
  readonly io: IoThreads | null;
  /** Where the I/O threads write their replies: the device, or the io_uring transport's pipe. */
  replyFd: number;
  /** Large READs go to the I/O threads (not through io_uring: its replies must fill the ring's entries). */
  readsOnThreads: boolean;
  /**
   * Where the current request's reply will be sent from, when the transport has such a place (an
   * io_uring entry's payload): READ reads its data straight into it.
   */
  replyArea: Buffer | null = null;
  /** The handles whose READs the io_uring queue threads read themselves (direct-reads.ts), if they do. */
  directReads: DirectReads | null = null;

  constructor(
    readonly ops: UnionOps,
    readonly options: SessionOptions = {},
  ) {
    this.entryTimeout = options.entryTimeout ?? ENTRY_TIMEOUT_S;
    this.attrTimeout = options.attrTimeout ?? ATTR_TIMEOUT_S;
    this.splice = options.devFd !== undefined && options.splice !== false ? new SpliceReplies() : null;
    this.io = options.devFd !== undefined && options.ioThreads !== false ? ioThreads() : null;
    this.replyFd = options.devFd ?? -1;
    this.readsOnThreads = this.io !== null;
  }

  /**
   * A buffer of `size` bytes for a READ's data, the same one for every READ of this thread: its reply
   * is written before the thread reads its next request (loop.ts), and nothing keeps a reply's parts
   * after that.
   */
  readBuffer(size: number): Buffer {
    if (this.replyArea !== null && this.replyArea.length >= size) return this.replyArea.subarray(0, size);
    if (readScratch.length < size) readScratch = Buffer.allocUnsafe(size);
    return readScratch.subarray(0, size);
  }

  /** The kernel can do without OPENDIR/RELEASEDIR (FUSE_NO_OPENDIR_SUPPORT): OPENDIR answers ENOSYS. */
  get zeroMessageOpendir(): boolean {
    return this.neg !== null && (this.neg.flags & Init.NO_OPENDIR_SUPPORT) !== 0;
  }

  /** Whether INIT should offer io_uring. */
  get wantsUring(): boolean {
    return this.options.devFd !== undefined && this.options.uring === true;
  }

  /**
   * Replies now go out through io_uring entries only: nothing may write a reply to the device behind
   * the ring's back. READs are no longer spliced nor handed to the I/O threads; those write their FSYNC
   * replies (16-byte out-headers) to `syncReplyFd` instead, for the ring to commit.
   */
  repliesThroughRing(syncReplyFd: number): void {
    this.splice?.close();
    this.splice = null;
    this.readsOnThreads = false;
    this.replyFd = syncReplyFd;
  }

  /** Whether INIT should ask for passthrough. */
  get wantsPassthrough(): boolean {
    return this.options.devFd !== undefined && this.options.passthrough !== false;
  }

  /** Records INIT's outcome. */
  negotiated(neg: Negotiated): void {
    this.neg = neg;
    const granted = (neg.flags2 & Init2.PASSTHROUGH) !== 0;
    const log = this.options.log ?? ((): void => undefined);
    this.passthrough = new Passthrough(deviceIoctls(this.options.devFd ?? -1), granted, log);
  }

  opened(nodeid: number, fh: number): void {
    let set = this.openFiles.get(nodeid);
    if (set === undefined) this.openFiles.set(nodeid, (set = new Set()));
    set.add(fh);
  }

  closed(nodeid: number, fh: number): void {
    this.directReads?.retract(fh);
    const set = this.openFiles.get(nodeid);
    if (set?.delete(fh) && set.size === 0) this.openFiles.delete(nodeid);
  }

  /**
   * Tells the queue threads (if they read for themselves) which descriptor handle `fh` reads now: at
   * open (ops-files.ts), and again when a READ came here (its handle may have followed a copy-up).
   */
  publishRead(fh: number): void {
    const d = this.directReads;
    if (d === null || this.ops.readFd === undefined || this.ops.copyUpEpoch === undefined) return;
    let fd: number | undefined;
    try {
      fd = this.ops.readFd(fh);
    } catch {
      fd = undefined; // not published: its READs come here, and meet the same error (answered as such)
    }
    d.publish(fh, fd, this.ops.copyUpEpoch());
  }

  /** Before any reply: READs sent after it must not read a descriptor a copy-up made stale. */
  publishEpoch(): void {
    if (this.directReads !== null && this.ops.copyUpEpoch !== undefined)
      this.directReads.setEpoch(this.ops.copyUpEpoch());
  }

  /** Some open file handle of the node, if any. */
  openHandle(nodeid: number): number | undefined {
    for (const fh of this.openFiles.get(nodeid) ?? []) return fh;
    return undefined;
  }

  /**
   * Path and handle for an attribute request: the handle the kernel sent, else the node's path, else
   * (node removed) the last path with an open handle of the node; ENOENT when there is none.
   */
  target(nodeid: number, fh: number | undefined): { path: string; fh: number | undefined } {
    if (fh !== undefined) return { path: this.table.path(nodeid, true), fh };
    if (this.table.isAttached(nodeid)) return { path: this.table.path(nodeid), fh: undefined };
    const open = this.openHandle(nodeid);
    if (open === undefined) return { path: this.table.path(nodeid), fh: undefined }; // throws ENOENT
    return { path: this.table.path(nodeid, true), fh: open };
  }

  /** Marks a node as changed by the current request (its aliases get invalidated after the reply). */
  touch(nodeid: number | undefined): void {
    if (nodeid !== undefined) this.touched.add(nodeid);
  }

  /**
   * Marks a node whose own attributes the current request changed behind the kernel's back (the source
   * of a LINK, set-id bits a write cleared): they are invalidated before the reply.
   */
  touchSelf(nodeid: number): void {
    this.stale.add(nodeid);
    this.touched.add(nodeid);
  }

  /** Marks the node of directory `path` stale, if the kernel knows it: a copy-up changed it. */
  dirChanged(path: string): void {
    const id = this.table.idOfPath(path);
    if (id !== undefined) this.attrsStale(id);
  }

  /** Set-id bits of an open file's node were cleared by the daemon (KILL_SUIDGID): its mode is stale. */
  killedSuidgid(nodeid: number, fh: number): void {
    if (this.ops.killSuidgid?.(fh) === true) this.touchSelf(nodeid);
  }

  /**
   * Nodes whose cached attributes must be dropped before the reply goes out, so the caller never sees
   * them (a set-uid bit still in effect after its write returned). Attributes only: dropping them takes
   * no lock a pending request may hold.
   */
  takeStale(): number[] {
    if (this.stale.size === 0) return [];
    const out = [...this.stale];
    this.stale.clear();
    return out;
  }

  /**
   * The nodes whose pages must be dropped before the reply (through the page-invalidation thread,
   * notifier.ts): the other names of touched nodes.
   */
  takeAliasesToInvalidate(): number[] {
    if (this.touched.size === 0) return [];
    const out = new Set<number>();
    for (const id of this.touched) for (const alias of this.table.aliases(id)) out.add(alias);
    this.touched.clear();
    return [...out];
  }

  /**
   * How long the kernel may cache node `nodeid`'s attributes: not at all while it is passed through (the
   * kernel does not see writes through a shared mapping of the backing file), else `attrTimeout`.
   */
  attrTimeoutFor(nodeid: number): number {
    return this.passthrough?.passing(nodeid) === true ? 0 : this.attrTimeout;
  }

  /**
   * The live node of `name` in `parentId` when the kernel still holds a fresh entry and fresh attributes
   * for it from an entry reply (at least half of both timeouts left, and not passed through), else
   * undefined. READDIRPLUS sends such a name without attributes (node id 0): the kernel keeps what it
   * has, including the ACLs it cached, which a refresh would drop (fuse_direntplus_link).
   */
  freshChild(parentId: number, name: string): NodeInfo | undefined {
    const node = this.table.liveChild(parentId, name);
    if (node === undefined) return undefined;
    const validS = Math.min(this.entryTimeout, this.attrTimeoutFor(node.id));
    if (validS < FRESH_MIN_S || clockS() - node.replied > validS / 2) return undefined;
    return node;
  }

  /**
   * True when node `nodeid`'s object is known to have no extended attributes at all, so that any GETXATTR
   * is ENODATA: learnt by one listxattr at its first GETXATTR (`ls -l` asks for security.selinux of every
   * name, and the kernel caches no answer), forgotten at any SETXATTR or REMOVEXATTR on it or on another
   * name of it. Copy-up keeps an object's attributes; nothing else the union does adds one it shows.
   */
  hasNoXattrs(nodeid: number): boolean {
    const node = this.table.get(nodeid);
    if (!node.attached) return false;
    if (node.xattrs !== Xattrs.Unknown) return node.xattrs === Xattrs.None;
    let names: string[] | undefined;
    try {
      names = this.ops.listxattr(this.table.path(nodeid));
    } catch {
      names = undefined; // not listable (noxattrs, an unsupported layer): GETXATTR answers each time
    }
    const known = names?.length === 0 ? Xattrs.None : Xattrs.Some;
    this.table.setXattrs(nodeid, known);
    return known === Xattrs.None;
  }

  /** Node `nodeid`'s extended attributes were changed (SETXATTR, REMOVEXATTR): under each of its names. */
  xattrsChanged(nodeid: number): void {
    for (const id of [nodeid, ...this.table.aliases(nodeid)]) {
      if (this.table.has(id)) this.table.setXattrs(id, Xattrs.Unknown);
    }
  }

  /** Drops node `nodeid`'s cached attributes before the reply (nothing else: no aliases). */
  attrsStale(nodeid: number): void {
    this.stale.add(nodeid);
  }

  /** Calls `ops.destroy()` the first time only. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.ops.destroy();
  }
}

export function callerOf(h: InHeader): Caller {
  return { uid: h.uid, gid: h.gid, pid: h.pid };
}

/**
 * The caller of MKNOD, MKDIR or CREATE, whose request carries its `umask`: handed to the core when
 * DONT_MASK was granted (the kernel then sends the mode unmasked), else the kernel already applied it.
 */
export function creatorOf(s: Session, h: InHeader, umask: number): Caller {
  const c = callerOf(h);
  if (s.neg !== null && (s.neg.flags & Init.DONT_MASK) !== 0) c.umask = umask;
  return c;
}
