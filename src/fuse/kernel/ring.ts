/**
 * FUSE over io_uring (kernel 6.14+, `Documentation/filesystems/fuse-io-uring.rst`): the transport that
 * takes requests from ring entries and answers them with one COMMIT_AND_FETCH each, which also re-arms
 * the entry. It only moves bytes; loop.ts dispatches.
 *
 * Invariants:
 * - Used by the serving thread only, after INIT was answered with FUSE_OVER_IO_URING granted, which is
 *   asked for only when `ringUnusable()` found nothing against it: once granted, the kernel holds every
 *   request until all queues have entries or one REGISTER was refused (then it goes back to /dev/fuse:
 *   RingRefused). Every queue the kernel has (one per possible CPU) gets QUEUE_DEPTH entries: the kernel
 *   sends nothing through the ring until each queue has one, and a queue without entries would hold its
 *   CPU's callers.
 * - An entry is either with the kernel (registered or committed: waiting for a request) or holds exactly
 *   one request until `reply()`. Its request is handed out as one contiguous buffer (in-header, the
 *   op's own struct, the payload) inside the entry's memory, rebuilt in front of the payload so a
 *   WRITE's data is never copied; it is valid until the reply.
 * - A reply is written into the entry (out-header, payload) and committed by the next `wait()`. If
 *   the kernel refuses the commit (the request is gone), the reply's `undo` runs and the entry is
 *   registered again.
 * - FORGET, INTERRUPT and anything queued before the ring was complete still come on /dev/fuse: a
 *   multishot poll on it reports "device" and the loop reads it.
 * - An I/O thread cannot answer a ring request on /dev/fuse: it writes its FSYNC replies' 16-byte
 *   out-headers to a pipe polled in the ring (`syncReplyFd`), and each is committed on the entry holding
 *   that request (or written to /dev/fuse, for one that came there). READs are not handed over.
 * - A request kept long (held, FSYNC) gets its queue a spare entry (`keep`), so that queue's CPU still
 *   has free entries; entries never shrink.
 * - The ring ends ("gone") when the kernel ends the entries (ENOTCONN: unmounted, ECONNABORTED: aborted).
 */
import * as fs from "node:fs";
import { constants } from "node:os";
import {
  CQE_F_MORE,
  OP_POLL_ADD,
  OP_URING_CMD,
  POLL_ADD_MULTI,
  SETUP_SQE128,
  Uring,
  addressOf,
  pageSize,
} from "../../sys/uring";
import { codeOfErrno } from "../../errors";
import { closeFd, pipe, readRecords } from "../../sys/libc";
import type { Negotiated } from "./init";
import { Size } from "./protocol";

/** Entries per queue (libfuse uses 8; requests are served one at a time here, so 4 is plenty). */
export const QUEUE_DEPTH = 4;
/** Entries added for requests kept long (held, FSYNC), beyond QUEUE_DEPTH per queue. */
const MAX_SPARES = 64;
const CMD_REGISTER = 1;
const CMD_COMMIT_AND_FETCH = 2;
/** struct fuse_uring_req_header: in_out[128], op_in[128], then fuse_uring_ent_in_out. */
const HEADER_SIZE = 288;
const OP_IN = 128;
const OP_IN_MAX = 128;
/** Where the kernel puts a request's commit id in an entry's header (struct fuse_uring_ent_in_out). */
export const ENT_COMMIT_ID = 264;
const ENT_PAYLOAD_SZ = 272;
/** Where an entry's payload starts in its buffer: after the header, room to rebuild the request before it. */
const LEAD = 4096;
const POLLIN = 1;
const TAG_DEVICE = 0xffff0001;
const TAG_WAKE = 0xffff0002;
const TAG_SYNC = 0xffff0003;
const ENOTCONN = constants.errno.ENOTCONN as number;
const ENODEV = constants.errno.ENODEV as number;
const EAGAIN = constants.errno.EAGAIN as number;
const EINTR = constants.errno.EINTR as number;
const ECONNABORTED = constants.errno.ECONNABORTED as number;
/** REGISTERs answered EAGAIN (INIT not answered yet) tried again before the entry is given up. */
const MAX_REGISTER_RETRIES = 100;
/** The kernel's fuse_conn default max_pages when MAX_PAGES was not negotiated. */
const DEFAULT_MAX_PAGES = 32;
const MIN_PAYLOAD = 8192;

export interface RingEntry {
  readonly tag: number;
  readonly qid: number;
  /** Header at 0, the payload at LEAD. */
  readonly buf: Buffer;
  readonly payload: Buffer;
  readonly iov: Buffer;
  /** The request it holds (valid until the reply), and its commit id: the kernel gives the request's unique. */
  request: Buffer | null;
  commitId: bigint;
  /** The last reply's undo, until the kernel took or refused that reply. */
  undo: (() => void) | undefined;
  /** What was last submitted for it, and how many REGISTERs in a row came back EAGAIN. */
  last: "register" | "commit";
  retries: number;
}

export type RingEvent =
  | { kind: "request"; entry: RingEntry; request: Buffer }
  | { kind: "device" }
  | { kind: "woken" }
  | { kind: "gone" };

/**
 * Why this process cannot set up a ring FUSE could use (io_uring_disabled, a seccomp filter, an old
 * kernel), or undefined when it can: a ring with 128-byte entries is made and closed again.
 */
export function ringUnusable(): string | undefined {
  try {
    new Uring(2, 4, SETUP_SQE128).close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * Number of queues the kernel keeps: num_possible_cpus(), the count of CPUs in
 * /sys/devices/system/cpu/possible ("0-3,6": 5).
 */
export function possibleCpus(text = fs.readFileSync("/sys/devices/system/cpu/possible", "latin1")): number {
  let count = 0;
  for (const part of text.trim().split(",")) {
    const [first, last = first] = part.split("-").map(Number);
    if (Number.isInteger(first) && Number.isInteger(last)) count += (last as number) - (first as number) + 1;
  }
  return Math.max(count, 1);
}

/** The payload size the kernel requires of every entry (fuse_uring_create), for pages of `pageBytes`. */
export function payloadSize(neg: Negotiated, pageBytes = pageSize()): number {
  return Math.max(MIN_PAYLOAD, neg.maxWrite, (neg.maxPages || DEFAULT_MAX_PAGES) * pageBytes);
}

export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * The kernel refused an entry's REGISTER at setup. It then stops using the ring for this connection and
 * wakes the requests that waited for it: they come on /dev/fuse.
 */
export class RingRefused extends Error {
  constructor(readonly code: string) {
    super(`io_uring entry refused: ${code}`);
  }
}

export class FuseRing {
  readonly entries: RingEntry[] = [];
  private readonly uring: Uring;
  private wakeArmed = false;
  /** Events seen while setting up, handed out by the first `wait()`. */
  private readonly pending: RingEvent[] = [];
  /** The I/O threads' FSYNC replies: they write the write end, the ring polls the read end. */
  private readonly syncPipe: [number, number];
  private readonly log: (line: string) => void;
  private readonly baseEntries: number;

  /** Sets the ring up and registers every entry; throws (an errno error) when the kernel refuses. */
  constructor(
    private readonly devFd: number,
    neg: Negotiated,
    log: (line: string) => void,
    queues = possibleCpus(),
  ) {
    this.log = log;
    const total = queues * QUEUE_DEPTH;
    this.baseEntries = total;
    const size = nextPowerOfTwo(total + MAX_SPARES + 4);
    this.syncPipe = pipe();
    try {
      this.uring = new Uring(size, size * 2, SETUP_SQE128);
    } catch (err) {
      this.syncPipe.forEach(closeFd);
      throw err;
    }
    try {
      const payload = payloadSize(neg);
      for (let qid = 0; qid < queues; qid++)
        for (let i = 0; i < QUEUE_DEPTH; i++) this.entries.push(makeEntry(this.entries.length, qid, payload));
      for (const e of this.entries) this.register(e);
      this.pollDevice();
      this.poll(this.syncPipe[0], TAG_SYNC, POLL_ADD_MULTI);
      this.uring.enter(0);
      this.checkRegistered();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /**
   * Where the I/O threads write their replies (out-headers) to requests of this ring. Each job writes
   * to a duplicate of its own (io-threads.ts), so the ring closes this one with the rest.
   */
  get syncReplyFd(): number {
    return this.syncPipe[1];
  }

  /**
   * Registration errors come at once (the kernel checks before queueing the entry). Anything else seen
   * now is kept for the first `wait()`: a request that waited for the ring to be complete may already sit
   * in an entry.
   */
  private checkRegistered(): void {
    const seen = this.uring.completions();
    const refused = seen.find((c) => c.res < 0 && c.tag < this.entries.length);
    if (refused !== undefined) throw new RingRefused(codeOfErrno(-refused.res));
    for (const c of seen) {
      const ev = this.completed(c.tag, c.res, c.flags);
      if (ev !== undefined) this.pending.push(ev);
    }
  }

  private register(e: RingEntry): void {
    registerEntry(this.uring, this.devFd, e);
  }

  private commit(e: RingEntry): void {
    commitEntry(this.uring, this.devFd, e);
  }

  private pollDevice(): void {
    this.poll(this.devFd, TAG_DEVICE, POLL_ADD_MULTI);
  }

  private poll(fd: number, tag: number, mode: number): void {
    pollFd(this.uring, fd, tag, mode);
  }

  /**
   * `e` keeps its request for a while (held for a background copy, or an FSYNC on an I/O thread): its
   * queue gets one more entry, so the CPU's other callers are not left without one. Entries only grow,
   * by the most requests ever kept at once, up to MAX_SPARES.
   */
  keep(e: RingEntry): void {
    if (this.entries.length >= this.baseEntries + MAX_SPARES) return;
    const spare = makeEntry(this.entries.length, e.qid, e.payload.length);
    this.entries.push(spare);
    this.register(spare);
  }

  /** Reports "woken" once `fd` is readable (a background copy finished); one report per call. */
  armWake(fd: number): void {
    if (this.wakeArmed) return;
    this.wakeArmed = true;
    this.poll(fd, TAG_WAKE, 0);
  }

  /** Submits the replies written so far and blocks until something happens. */
  wait(): RingEvent[] {
    if (this.pending.length > 0) return this.pending.splice(0);
    while (this.uring.enter(1) < 0); // EINTR: again
    const out: RingEvent[] = [];
    for (const c of this.uring.completions()) {
      const ev = this.completed(c.tag, c.res, c.flags);
      if (ev !== undefined) out.push(ev);
    }
    return out;
  }

  private completed(tag: number, res: number, flags: number): RingEvent | undefined {
    if (tag === TAG_DEVICE) {
      if ((flags & CQE_F_MORE) === 0) this.pollDevice();
      return { kind: "device" };
    }
    if (tag === TAG_WAKE) {
      this.wakeArmed = false;
      return { kind: "woken" };
    }
    if (tag === TAG_SYNC) {
      if ((flags & CQE_F_MORE) === 0) this.poll(this.syncPipe[0], TAG_SYNC, POLL_ADD_MULTI);
      this.commitSynced();
      return undefined;
    }
    const e = this.entries[tag];
    if (e === undefined) return undefined;
    const undo = e.undo;
    e.undo = undefined;
    if (res < 0) return this.failed(e, -res, undo);
    const request = receive(e);
    if (request === null) {
      this.log(`io_uring entry ${tag}: malformed request (length fields disagree); answered EIO`);
      this.replyRaw(e, EIO, []);
      return undefined;
    }
    e.request = request;
    return { kind: "request", entry: e, request };
  }

  /**
   * A command on `e` failed. The session's end: "gone". A refused reply (its request was interrupted or
   * aborted): the reply's side effects are undone and the entry registered again. A refused REGISTER is
   * tried again only after EAGAIN (a few times); otherwise the entry is dropped: the kernel then stops
   * using the ring and sends requests on /dev/fuse, which the device poll still serves.
   */
  private failed(e: RingEntry, errno: number, undo: (() => void) | undefined): RingEvent | undefined {
    if (sessionEnded(errno)) return { kind: "gone" };
    undo?.();
    recoverEntry(this.uring, this.devFd, e, errno, this.log);
    return undefined;
  }

  /**
   * Answers the request `e` holds: `errno` (positive) with no data, or 0 with `parts`. `undo` runs if
   * the kernel refuses the reply.
   */
  reply(e: RingEntry, errno: number, parts: readonly Buffer[], undo?: () => void): void {
    e.undo = undo;
    this.replyRaw(e, errno, errno === 0 ? parts : []);
  }

  /** Writes the reply to the request `e` holds (its unique is the commit id) and queues the commit. */
  private replyRaw(e: RingEntry, errno: number, parts: readonly Buffer[]): void {
    fillReply(e, errno, parts, this.log);
    this.commit(e);
  }

  /** Commits the replies the I/O threads wrote, each on the entry that holds its request. */
  private commitSynced(): void {
    takeSyncReplies(
      this.syncPipe[0],
      this.entries,
      (e, errno) => this.replyRaw(e, errno, []),
      (reply) => writeDevice(this.devFd, reply),
    );
  }

  close(): void {
    this.uring.close();
    this.syncPipe.forEach(closeFd);
  }
}

/**
 * Writes the reply to the request `e` holds into the entry (out-header, payload; its unique is the
 * commit id), ready to be committed. A reply too big for the entry becomes EIO (its undo runs).
 */
export function fillReply(
  e: RingEntry,
  errno: number,
  parts: readonly Buffer[],
  log: (l: string) => void,
): void {
  let n = 0;
  for (const p of parts) {
    if (n + p.length > e.payload.length) {
      log(`io_uring reply of ${n + p.length} bytes does not fit the entry; answered EIO`);
      e.undo?.();
      e.undo = undefined;
      return fillReply(e, EIO, [], log);
    }
    // READ reads straight into the payload (Session.replyArea): nothing to copy then.
    if (p.buffer !== e.payload.buffer || p.byteOffset !== e.payload.byteOffset + n) p.copy(e.payload, n);
    n += p.length;
  }
  e.buf.writeUInt32LE(Size.OUT_HEADER + n, 0);
  e.buf.writeInt32LE(-errno, 4);
  e.buf.writeBigUInt64LE(e.commitId, 8);
  e.buf.writeUInt32LE(n, ENT_PAYLOAD_SZ);
  e.request = null;
}

/**
 * Reads the I/O threads' FSYNC replies (16-byte out-headers) waiting on pipe `fd`: each is answered on
 * the entry holding its request (`answer`), or, for a request that came on /dev/fuse (before the ring
 * was complete), passed whole to `elsewhere`.
 */
export function takeSyncReplies(
  fd: number,
  entries: readonly RingEntry[],
  answer: (e: RingEntry, errno: number) => void,
  elsewhere: (reply: Buffer) => void,
): void {
  readRecords(fd, Size.OUT_HEADER, (buf, at) => {
    const unique = buf.readBigUInt64LE(at + 8);
    const e = entries.find((x) => x.request !== null && x.commitId === unique);
    if (e === undefined) elsewhere(buf.subarray(at, at + Size.OUT_HEADER));
    else answer(e, -buf.readInt32LE(at + 4));
  });
}

/** Queues a poll of `fd` for reading on `uring`, tagged `tag` (`mode`: 0, or POLL_ADD_MULTI to stay armed). */
export function pollFd(uring: Uring, fd: number, tag: number, mode: number): void {
  const sqe = uring.sqe(OP_POLL_ADD, fd, tag);
  sqe.writeUInt32LE(mode, 24);
  sqe.writeUInt32LE(POLLIN, 28);
}

/** Queues `e`'s REGISTER on `uring`: the entry's memory is handed to the kernel for its queue. */
export function registerEntry(uring: Uring, devFd: number, e: RingEntry): void {
  e.last = "register";
  const sqe = fuseCmd(uring, devFd, e, CMD_REGISTER);
  sqe.writeBigUInt64LE(addressOf(e.iov), 16);
  sqe.writeUInt32LE(2, 24);
}

/** Queues `e`'s COMMIT_AND_FETCH on `uring`: the reply written in it goes, and the entry is re-armed. */
export function commitEntry(uring: Uring, devFd: number, e: RingEntry): void {
  e.last = "commit";
  e.retries = 0;
  fuseCmd(uring, devFd, e, CMD_COMMIT_AND_FETCH).writeBigUInt64LE(e.commitId, 56);
}

/** A FUSE io_uring command on `e`'s queue, tagged with `e`: the fields REGISTER and COMMIT share. */
function fuseCmd(uring: Uring, devFd: number, e: RingEntry, op: number): Buffer {
  const sqe = uring.sqe(OP_URING_CMD, devFd, e.tag);
  sqe.writeUInt32LE(op, 8);
  sqe.writeUInt16LE(e.qid, 64);
  return sqe;
}

/**
 * A command on `e` failed with `errno`, and not because the session ended (`sessionEnded`). A REGISTER
 * answered EAGAIN or EINTR is queued again (up to MAX_REGISTER_RETRIES in a row), any other refused
 * REGISTER drops the entry; a refused reply (its request was interrupted or aborted) has the entry
 * registered again. True for a refused reply: the caller undoes it (before the REGISTER queued here is
 * submitted, so before the entry can hold another request).
 */
export function recoverEntry(
  uring: Uring,
  devFd: number,
  e: RingEntry,
  errno: number,
  log: (line: string) => void,
): boolean {
  if (e.last === "register") {
    if ((errno === EAGAIN || errno === EINTR) && ++e.retries < MAX_REGISTER_RETRIES)
      registerEntry(uring, devFd, e);
    else log(`io_uring entry ${e.tag}: REGISTER refused (${codeOfErrno(errno)}); entry dropped`);
    return false;
  }
  log(`io_uring entry ${e.tag}: reply refused (${codeOfErrno(errno)}); registered again`);
  registerEntry(uring, devFd, e);
  return true;
}

/** Whether a command's errno says the session is over (unmounted, aborted). */
export function sessionEnded(errno: number): boolean {
  return errno === ENOTCONN || errno === ENODEV || errno === ECONNABORTED;
}

const EIO = constants.errno.EIO as number;

function writeDevice(fd: number, reply: Buffer): void {
  try {
    fs.writeSync(fd, reply);
  } catch {
    // interrupted (ENOENT) or the session is gone (ENODEV): nobody waits for this reply
  }
}

export function makeEntry(tag: number, qid: number, payloadBytes: number): RingEntry {
  const buf = Buffer.allocUnsafeSlow(LEAD + payloadBytes);
  buf.fill(0, 0, HEADER_SIZE);
  return entryOver(tag, qid, buf);
}

/** The bytes an entry with `payloadBytes` of payload takes (entryOver). */
export function entryBytes(payloadBytes: number): number {
  return LEAD + payloadBytes;
}

/** The address of `e`'s payload (the second iovec of its REGISTER: `entryOver`). */
export function payloadAddress(e: RingEntry): bigint {
  return e.iov.readBigUInt64LE(16);
}

/** An entry over `buf` (entryBytes long: memory another thread may share), its header zeroed by the caller. */
export function entryOver(tag: number, qid: number, buf: Buffer): RingEntry {
  const payloadBytes = buf.length - LEAD;
  const iov = Buffer.allocUnsafeSlow(32); // struct iovec[2]: the header, the payload
  const base = addressOf(buf);
  iov.writeBigUInt64LE(base, 0);
  iov.writeBigUInt64LE(BigInt(HEADER_SIZE), 8);
  iov.writeBigUInt64LE(base + BigInt(LEAD), 16);
  iov.writeBigUInt64LE(BigInt(payloadBytes), 24);
  return {
    tag,
    qid,
    buf,
    payload: buf.subarray(LEAD),
    iov,
    request: null,
    commitId: 0n,
    undo: undefined,
    last: "register",
    retries: 0,
  };
}

/**
 * The request in `e` as one buffer: the in-header (in_out) and the op's struct (op_in) are copied in
 * front of the payload. The op struct's size is what the header's length leaves after the payload.
 * null when the sizes do not add up.
 */
export function receive(e: RingEntry): Buffer | null {
  e.commitId = e.buf.readBigUInt64LE(ENT_COMMIT_ID);
  const len = e.buf.readUInt32LE(0);
  const payloadSz = e.buf.readUInt32LE(ENT_PAYLOAD_SZ);
  const opSize = len - Size.IN_HEADER - payloadSz;
  if (opSize < 0 || opSize > OP_IN_MAX || payloadSz > e.payload.length) return null;
  const start = LEAD - Size.IN_HEADER - opSize;
  e.buf.copy(e.buf, start, 0, Size.IN_HEADER);
  e.buf.copy(e.buf, start + Size.IN_HEADER, OP_IN, OP_IN + opSize);
  return e.buf.subarray(start, LEAD + payloadSz);
}
