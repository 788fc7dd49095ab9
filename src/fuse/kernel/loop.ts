/**
 * The request loop: blocking read of one request from /dev/fuse, dispatch, one write of the reply (or
 * one splice, for a large READ: splice.ts). When INIT granted FUSE_OVER_IO_URING, the same loop takes
 * requests from io_uring entries instead (ring.ts) and commits each reply on its entry; what still comes
 * on /dev/fuse (FORGET, INTERRUPT, requests queued before the ring was complete) is read when a poll in
 * the ring says so. Entries the kernel refuses at setup leave the device serving (the kernel goes back to
 * it); a ring that cannot be built after INIT granted it ends the session with an error.
 *
 * Invariants:
 * - Runs on one thread with synchronous fs calls only (nothing is parked in the libuv pool), so requests
 *   are served strictly one at a time, in the order the kernel hands them out — except requests held
 *   while a big copy-up's data is copied in the background (held.ts), served once it is done, and
 *   FSYNCs and large READs handed to an I/O thread, which answers them itself (io-threads.ts). A
 *   thread serving several mounts (hub.ts) serves each as a `PolledSession`: the same handling, a burst
 *   at a time, whenever its non-blocking device polls readable.
 * - Between requests, a thread serving one mount may read its device (then non-blocking) again for a
 *   while before it sleeps in poll (spin.ts), so a request that follows closely needs no wake-up.
 * - Returns (never throws for device errors the kernel uses to end a session) once the device reports
 *   ENODEV, i.e. the mount is gone or the connection was aborted. ENOENT/EINTR/EAGAIN on read are retried.
 * - A reply the kernel refuses (ENOENT: its request was interrupted) has its side effects undone.
 * - What a request changed behind the kernel's back is invalidated before its reply, so the caller never
 *   sees it stale: attributes from this thread, other names' pages from another (notifier.ts), waited
 *   for only so long, so a page lock never holds up serving for good.
 * - Everything it logs goes straight to fd 2 with a synchronous write: a busy worker never flushes
 *   asynchronous streams.
 */
import * as fs from "node:fs";
import { codeOf, errorText } from "../../errors";
import type { InHeader } from "./codec";
import { notifyInvalInode, outHeader } from "./codec";
import { describe, dispatch } from "./dispatch";
import { DirectReads } from "./direct-reads";
import { HeldRequests } from "./held";
import { PageNotifier } from "./notifier";
import { writeNotification } from "./notify-ring";
import { logAt, logLine } from "./log";
import type { Outcome } from "./dispatch";
import { Init2, NOTIFY_INVAL_INODE, Op, READ_BUFFER_SIZE, opName } from "./protocol";
import { FuseRing, QUEUE_DEPTH, RingRefused, type RingEntry } from "./ring";
import { QueueThreads, THREADED_DEPTH, queueThreadsWanted, type SpawnQueues } from "./queue-threads";
import { pollReadable, readSome, setNonBlocking } from "../../sys/libc";
import { Spinner } from "./spin";
import type { Reply, Session } from "./session";
import { constants } from "node:os";

const ENOSYS = constants.errno.ENOSYS as number;

export interface LoopOptions {
  debug?: boolean;
  /** INIT was answered: the mount now serves. */
  onReady?: () => void;
  /** INIT was answered with an error: the kernel will refuse the connection. */
  onInitFailed?: (errno: number) => void;
  /** Which transport serves the mount ("/dev/fuse", "io_uring (…)"), once that is known. */
  onTransport?: (name: string) => void;
  /**
   * Has io_uring queue threads started, one per CPU (by the mounting thread: link.ts). Without it, one
   * thread serves every queue.
   */
  spawnQueues?: SpawnQueues;
}

export { logAt, logLine };

function logUnknown(err: unknown, h: InHeader): void {
  logLine(
    `${opName(h.opcode)} (node ${h.nodeid}): unexpected error, replying EIO: ${errorText(err)}`,
    "error",
  );
}

/**
 * Bytes of the next request, or -1 once the session has ended (ENODEV); with `once` (a non-blocking
 * device polled among others), 0 when no request is waiting. With an enabled `spin` (a non-blocking
 * device served alone), an empty device is read again while the spinner says so, then polled.
 */
function readRequest(fd: number, buf: Buffer, once = false, spin?: Spinner): number {
  for (;;) {
    let n: number | undefined;
    try {
      n = readSome(fd, buf);
    } catch (err) {
      const code = codeOf(err);
      if (code === "ENOENT" || code === "EINTR") continue;
      if (code === "ENODEV") return -1;
      throw err;
    }
    if (n !== undefined) {
      spin?.reset();
      return n > 0 ? n : -1;
    }
    if (once) return 0;
    if (spin === undefined || !spin.again()) pollReadable([fd]);
  }
}

type WriteResult = "ok" | "refused" | "gone";

function writeReply(fd: number, s: Session, out: Outcome, reply: Reply): WriteResult {
  if (reply.spliced !== undefined) {
    if (out.errno === 0) return s.splice?.send(fd, out.h.unique) ?? "refused";
    s.splice?.discard();
  }
  return writeParts(fd, out, reply.parts);
}

function writeParts(fd: number, out: Outcome, parts: Buffer[]): WriteResult {
  // No empty parts: libuv would write each one on its own, and the device refuses an empty write.
  const payload = out.errno === 0 ? parts.filter((p) => p.length > 0) : [];
  const len = payload.reduce((sum, p) => sum + p.length, 16);
  const iov = [outHeader(len, out.errno, out.h.unique), ...payload];
  for (;;) {
    try {
      fs.writevSync(fd, iov);
      return "ok";
    } catch (err) {
      const code = codeOf(err);
      if (code === "EINTR") continue;
      if (code === "ENODEV") return "gone";
      if (code !== "ENOENT")
        logLine(`${opName(out.h.opcode)}: reply rejected by the kernel: ${String(err)}`, "warning");
      return "refused";
    }
  }
}

function errnoName(errno: number): string {
  if (errno === 0) return "0";
  const entry = Object.entries(constants.errno).find(([, n]) => n === errno);
  return entry === undefined ? `errno ${errno}` : entry[0];
}

function outcomeText(out: Outcome): string {
  if (out.reply === null) return handedOver(out.h.opcode) ? "(answered by an I/O thread)" : "(no reply)";
  const spliced = out.reply.spliced;
  return spliced === undefined || out.errno !== 0 ? errnoName(out.errno) : `0 (${spliced} bytes spliced)`;
}

function handedOver(opcode: number): boolean {
  return opcode === Op.FSYNC || opcode === Op.READ;
}

/** Where a reply goes: written to the device, or committed on the ring entry the request came in. */
type Send = (out: Outcome, reply: Reply) => WriteResult;

/** What every part of one session's serving shares. */
interface Serving {
  fd: number;
  s: Session;
  opts: LoopOptions;
  pages: PageNotifier;
  held: HeldRequests;
  /** Where requests are read from the device into. */
  buf: Buffer;
  /** Replies written to the device. */
  devSend: Send;
  /** Whether an empty device is read again before sleeping (spin.ts; if not, the device blocks). */
  readonly spin: Spinner;
}

/** Serves requests on `fd` until the session ends: on the device, or through io_uring once INIT granted it. */
export function serve(fd: number, s: Session, opts: LoopOptions = {}): void {
  // The ring waits in io_uring_enter: its device stays blocking.
  const c = servingOf(fd, s, opts, Buffer.allocUnsafe(READ_BUFFER_SIZE), Spinner.of(s.wantsUring));
  if (c.spin.enabled) setNonBlocking(fd);
  try {
    if (serveDevice(c) === "ring") {
      // INIT granted io_uring: the mount is ready once the ring is (or once it is known it will not be).
      if (opts.spawnQueues !== undefined && queueThreadsWanted()) {
        const queues = openQueues(c, opts.spawnQueues);
        opts.onReady?.();
        if (queues === null) serveDevice(c);
        else serveQueues(c, queues);
        return;
      }
      const ring = openRing(c);
      opts.onReady?.();
      if (ring === null) serveDevice(c);
      else serveRing(c, ring);
    }
  } finally {
    closeServing(c);
  }
}

function servingOf(fd: number, s: Session, opts: LoopOptions, buf: Buffer, spin = new Spinner(0n)): Serving {
  return {
    fd,
    s,
    opts,
    pages: new PageNotifier(fd),
    held: new HeldRequests(s, opts.debug ? logAt("debug") : undefined),
    buf,
    devSend: (out, reply) => writeReply(fd, s, out, reply),
    spin,
  };
}

function closeServing(c: Serving): void {
  c.pages.close();
  c.s.splice?.close();
}

/**
 * One session served by a thread that polls several (hub.ts): its device is non-blocking, and the
 * thread serves it only when `fds()` polled readable, so no session waits behind another's empty device.
 * A session polled this way never serves io_uring (its Session must not ask for it).
 */
export class PolledSession {
  private readonly c: Serving;

  /** `buf`: where requests are read into, shared by the thread's sessions (one request at a time). */
  constructor(fd: number, s: Session, opts: LoopOptions, buf: Buffer) {
    if (s.wantsUring) throw new Error("a polled session serves /dev/fuse only");
    this.c = servingOf(fd, s, opts, buf);
  }

  /** What to poll for it: its device, and the wake descriptor of background copies while requests wait. */
  fds(): number[] {
    const wake = this.c.held.wakeFd;
    return this.c.held.waiting && wake !== undefined ? [this.c.fd, wake] : [this.c.fd];
  }

  /**
   * Serves the held requests whose copies finished, then at most `max` requests waiting on the device
   * (so that one busy mount does not starve the others); "gone" once the session ended.
   */
  serveReady(max: number): "gone" | "ok" {
    const c = this.c;
    if (c.held.waiting)
      for (const h of c.held.ready()) if (handle(c, h.request, c.devSend) === "gone") return "gone";
    for (let i = 0; i < max; i++) {
      const r = serveNext(c, true);
      if (r === "gone") return "gone";
      if (r === "none") break;
    }
    return "ok";
  }

  /** Ends what serving the session started (its invalidation thread, its splice pipe). */
  close(): void {
    closeServing(this.c);
  }
}

/**
 * Reads requests from the device; returns once the session is gone, or once INIT granted io_uring (INIT
 * comes once: a second call, after a refused ring, never returns "ring").
 */
function serveDevice(c: Serving): "gone" | "ring" {
  for (;;) {
    if (c.held.waiting) {
      const ready = c.held.wait(c.fd);
      for (const h of ready) if (handle(c, h.request, c.devSend) === "gone") return "gone";
      if (ready.length > 0) continue;
    }
    const request = serveNext(c);
    if (request === "gone") return "gone";
    if (request !== "none" && request.readUInt32LE(4) === Op.INIT && ringGranted(c.s)) return "ring";
  }
}

/**
 * Reads one request from the device and serves (or holds) it; "gone" once the session ended, "none"
 * (`once` only: a non-blocking device) when no request was waiting.
 */
function serveNext(c: Serving, once = false): Buffer | "gone" | "none" {
  const n = readRequest(c.fd, c.buf, once, once || !c.spin.enabled ? undefined : c.spin);
  if (n === 0) return "none";
  if (n < 0) return "gone";
  const request = c.buf.subarray(0, n);
  if (c.held.hold(request)) return request;
  return handle(c, request, c.devSend) === "gone" ? "gone" : request;
}

function ringGranted(s: Session): boolean {
  return s.neg !== null && (s.neg.flags2 & Init2.OVER_IO_URING) !== 0;
}

/** A ring (or its queue threads) could not be set up: null when its entries were refused, else throws. */
function ringFailed(c: Serving, err: unknown): null {
  if (err instanceof RingRefused) {
    logLine(`io_uring granted but its entries refused (${err.code}); serving /dev/fuse`, "warning");
    c.opts.onTransport?.("/dev/fuse");
    return null;
  }
  const why = err instanceof Error ? err.message : String(err);
  throw new Error(
    `io_uring was granted at INIT but could not be set up (${why}); the mount cannot be served`,
    {
      cause: err,
    },
  );
}

/**
 * The ring, set up; null when the kernel refused its entries (it then sends requests on /dev/fuse
 * again, and the device serves). Any other failure ends the mount: having granted io_uring at INIT, the
 * kernel holds every request until the ring is complete or refused.
 */
function openRing(c: Serving): FuseRing | null {
  const { s, opts } = c;
  const neg = s.neg;
  if (neg === null) throw new Error("io_uring: no INIT outcome");
  let ring: FuseRing;
  try {
    ring = new FuseRing(c.fd, neg, (line) => logLine(line, "warning"));
  } catch (err) {
    return ringFailed(c, err);
  }
  s.repliesThroughRing(ring.syncReplyFd);
  opts.onTransport?.(`io_uring (${ring.entries.length / QUEUE_DEPTH} queues of ${QUEUE_DEPTH})`);
  return ring;
}

/** How many requests from the queue threads may be served before the descriptors are polled. */
const POLL_EVERY = 32;

/** The queue threads, started; null when the kernel refused their entries (see openRing). */
function openQueues(c: Serving, spawn: SpawnQueues): QueueThreads | null {
  const neg = c.s.neg;
  if (neg === null) throw new Error("io_uring: no INIT outcome");
  let queues: QueueThreads;
  try {
    queues = QueueThreads.start(c.fd, neg, spawn, c.opts.debug === true);
  } catch (err) {
    return ringFailed(c, err);
  }
  c.s.repliesThroughRing(queues.syncReplyFd);
  const n = queues.entries.length / THREADED_DEPTH;
  c.opts.onTransport?.(`io_uring (${n} queues of ${THREADED_DEPTH}, a thread per CPU)`);
  return queues;
}

/**
 * Serves what the queue threads hand over, what comes on the device, the I/O threads' FSYNC replies
 * and the held requests whose copies finished, until the session ends; spins before sleeping.
 */
function serveQueues(c: Serving, q: QueueThreads): void {
  const { s } = c;
  // The queue threads' spins and this one's do not count as contention (spin.ts).
  const spin = Spinner.of(false, q.spinMates);
  if (process.env.UNIONFS_TS_DIRECT_READS !== "0") s.directReads = new DirectReads(q.directReads);
  const serveEntry = (e: RingEntry, request: Buffer): void => {
    s.replyArea = e.payload;
    try {
      const result = handle(c, request, (out, reply) => {
        q.reply(e, out.errno, reply.parts, out.errno === 0 ? reply.undo : undefined);
        return "ok";
      });
      const synced = result === "none" && request.readUInt32LE(4) === Op.FSYNC;
      if (e.request !== null && !synced) q.reply(e, ENOSYS, []);
    } finally {
      s.replyArea = null;
    }
  };
  const devWrite = (reply: Buffer): void => void writeNotification(c.fd, reply);
  let served = 0;
  try {
    for (;;) {
      if (q.failed)
        throw new Error("an io_uring queue thread stopped by an error; the mount cannot be served");
      if (q.gone) return;
      let did = false;
      for (const e of q.take()) {
        did = true;
        const request = e.request as Buffer;
        if (!c.held.hold(request, e.tag)) serveEntry(e, request);
      }
      // The descriptors are looked at when nothing was handed over, and every POLL_EVERY requests.
      if (did && ++served % POLL_EVERY !== 0) {
        spin.reset();
        continue;
      }
      const wake = c.held.waiting ? c.held.wakeFd : undefined;
      const fds = wake === undefined ? [c.fd, q.syncFd] : [c.fd, q.syncFd, wake];
      let ready = pollReadable(fds, 0);
      if (!did && !ready.includes(true)) {
        if (spin.again()) continue;
        ready = q.sleep(fds);
      }
      spin.reset();
      if (ready[0] === true && drainDevice(c) === "gone") return;
      if (ready[1] === true) q.commitSynced(devWrite);
      if (ready[2] === true)
        for (const h of c.held.ready()) {
          const e = q.entries[h.ticket];
          if (e !== undefined) serveEntry(e, h.request);
        }
    }
  } finally {
    q.close();
    s.directReads = null;
  }
}

function serveRing(c: Serving, ring: FuseRing): void {
  const { s } = c;
  const fromEntry = (ticket: number): Send => {
    const e = ring.entries[ticket];
    if (e === undefined) return c.devSend;
    return (out, reply) => {
      ring.reply(e, out.errno, reply.parts, out.errno === 0 ? reply.undo : undefined);
      return "ok";
    };
  };
  const serveEntry = (request: Buffer, ticket: number): void => {
    const e = ring.entries[ticket];
    s.replyArea = e?.payload ?? null;
    try {
      const result = handle(c, request, fromEntry(ticket));
      // A request the loop sent no reply to still has to give its entry back, but an FSYNC the sync
      // thread took: the ring commits the thread's reply.
      const synced = result === "none" && request.readUInt32LE(4) === Op.FSYNC;
      if (e !== undefined && e.request !== null) {
        if (synced) ring.keep(e);
        else ring.reply(e, ENOSYS, []);
      }
    } finally {
      s.replyArea = null;
    }
  };
  try {
    for (;;) {
      const wakeFd = c.held.wakeFd;
      if (c.held.waiting && wakeFd !== undefined) ring.armWake(wakeFd);
      for (const ev of ring.wait()) {
        if (ev.kind === "gone") return;
        if (ev.kind === "device" && drainDevice(c) === "gone") return;
        if (ev.kind === "woken") for (const h of c.held.ready()) serveEntry(h.request, h.ticket);
        if (ev.kind !== "request") continue;
        if (c.held.hold(ev.request, ev.entry.tag)) ring.keep(ev.entry);
        else serveEntry(ev.request, ev.entry.tag);
      }
    }
  } finally {
    ring.close();
  }
}

/** Serves what waits on the device (FORGET, INTERRUPT, requests queued before the ring was complete). */
function drainDevice(c: Serving): "gone" | "ok" {
  while (pollReadable([c.fd], 0)[0] === true) if (serveNext(c) === "gone") return "gone";
  return "ok";
}

/** Dispatches one request, sends its reply and the notifications it caused. */
function handle(c: Serving, request: Buffer, send: Send): WriteResult | "none" {
  const { s, opts, pages, fd } = c;
  const label = opts.debug ? describe(s, request) : "";
  const out = dispatch(s, request, logUnknown);
  // Before the reply: once the caller's call returns, nothing it changed may be served from the cache.
  // Pages go through another thread, waited for only so long: dropping them waits for page locks, which
  // a task may hold while it waits for a reply from this thread (notifier.ts).
  for (const id of s.takeStale()) writeNotification(fd, notifyInvalInode(id, NOTIFY_INVAL_INODE, true));
  for (const id of s.takeAliasesToInvalidate()) pages.send(notifyInvalInode(id, NOTIFY_INVAL_INODE));
  s.publishEpoch();
  let result: WriteResult | "none" = "none";
  if (out.reply !== null) {
    result = send(out, out.reply);
    if (result !== "ok" && out.errno === 0) out.reply.undo?.();
  }
  if (opts.debug) logLine(`${label} -> ${outcomeText(out)}`, "debug");
  if (result === "gone") return result;
  if (out.h.opcode === Op.INIT && result === "ok") {
    if (out.errno !== 0) opts.onInitFailed?.(out.errno);
    else if (s.neg !== null && !ringGranted(s)) {
      if (s.wantsUring)
        logLine(
          "io_uring asked for, but the kernel does not offer it (as root: echo 1 > /sys/module/fuse/parameters/enable_uring); serving /dev/fuse",
          "warning",
        );
      opts.onTransport?.("/dev/fuse");
      opts.onReady?.();
    }
  }
  return result;
}
