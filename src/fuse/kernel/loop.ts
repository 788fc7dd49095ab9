/**
 * The request loop: blocking read of one request from /dev/fuse, dispatch, one write of the reply (or
 * one splice, for a large READ: splice.ts).
 *
 * Invariants:
 * - Runs on one thread with synchronous fs calls only (nothing is parked in the libuv pool), so requests
 *   are served strictly one at a time, in the order the kernel hands them out — except requests held
 *   while a big copy-up's data is copied in the background (held.ts), served once it is done, and
 *   FSYNCs handed to the sync thread, which answers them itself (sync-thread.ts).
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
import { codeOf } from "../../errors";
import type { InHeader } from "./codec";
import { notifyInvalInode, outHeader } from "./codec";
import { describe, dispatch } from "./dispatch";
import { HeldRequests } from "./held";
import { PageNotifier } from "./notifier";
import { writeNotification } from "./notify-ring";
import { logAt, logLine } from "./log";
import type { Outcome } from "./dispatch";
import { NOTIFY_INVAL_INODE, Op, READ_BUFFER_SIZE, opName } from "./protocol";
import type { Reply, Session } from "./session";
import { constants } from "node:os";

export interface LoopOptions {
  debug?: boolean;
  /** INIT was answered: the mount now serves. */
  onReady?: () => void;
  /** INIT was answered with an error: the kernel will refuse the connection. */
  onInitFailed?: (errno: number) => void;
}

export { logAt, logLine };

function logUnknown(err: unknown, h: InHeader): void {
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  logLine(`${opName(h.opcode)} (node ${h.nodeid}): unexpected error, replying EIO: ${text}`, "error");
}

/** Bytes of the next request, or -1 once the session has ended (ENODEV). */
function readRequest(fd: number, buf: Buffer): number {
  for (;;) {
    try {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      return n > 0 ? n : -1;
    } catch (err) {
      const code = codeOf(err);
      if (code === "ENOENT" || code === "EINTR" || code === "EAGAIN") continue;
      if (code === "ENODEV") return -1;
      throw err;
    }
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
  const payload = out.errno === 0 ? parts : [];
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
  if (out.reply === null) return out.h.opcode === Op.FSYNC ? "(answered by the sync thread)" : "(no reply)";
  const spliced = out.reply.spliced;
  return spliced === undefined || out.errno !== 0 ? errnoName(out.errno) : `0 (${spliced} bytes spliced)`;
}

/** Serves requests on `fd` until the session ends. */
export function serve(fd: number, s: Session, opts: LoopOptions = {}): void {
  const pages = new PageNotifier(fd);
  try {
    serveUntilGone(fd, s, opts, pages);
  } finally {
    pages.close();
    s.splice?.close();
    s.syncs?.close();
  }
}

function serveUntilGone(fd: number, s: Session, opts: LoopOptions, pages: PageNotifier): void {
  const buf = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  const held = new HeldRequests(s, opts.debug ? logAt("debug") : undefined);
  for (;;) {
    if (held.waiting) {
      const ready = held.wait(fd);
      for (const request of ready) if (handle(fd, s, request, opts, pages) === "gone") return;
      if (ready.length > 0) continue;
    }
    const n = readRequest(fd, buf);
    if (n < 0) return;
    const request = buf.subarray(0, n);
    if (held.hold(request)) continue;
    if (handle(fd, s, request, opts, pages) === "gone") return;
  }
}

/** Dispatches one request, writes its reply and the notifications it caused. */
function handle(
  fd: number,
  s: Session,
  request: Buffer,
  opts: LoopOptions,
  pages: PageNotifier,
): WriteResult {
  const label = opts.debug ? describe(s, request) : "";
  const out = dispatch(s, request, logUnknown);
  // Before the reply: once the caller's call returns, nothing it changed may be served from the cache.
  // Pages go through another thread, waited for only so long: dropping them waits for page locks, which
  // a task may hold while it waits for a reply from this thread (notifier.ts).
  for (const id of s.takeStale()) writeNotification(fd, notifyInvalInode(id, NOTIFY_INVAL_INODE, true));
  for (const id of s.takeAliasesToInvalidate()) pages.send(notifyInvalInode(id, NOTIFY_INVAL_INODE));
  let result: WriteResult = "ok";
  if (out.reply !== null) {
    result = writeReply(fd, s, out, out.reply);
    if (result !== "ok" && out.errno === 0) out.reply.undo?.();
  }
  if (opts.debug) logLine(`${label} -> ${outcomeText(out)}`, "debug");
  if (result === "gone") return result;
  if (out.h.opcode === Op.INIT && result === "ok") {
    if (out.errno !== 0) opts.onInitFailed?.(out.errno);
    else if (s.neg !== null) opts.onReady?.();
  }
  return result;
}
