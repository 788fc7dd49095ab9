/**
 * One request in, one reply (or none) out: opcode → handler, and the transport's single errno catch site.
 *
 * Invariants:
 * - `dispatch` never throws for a well-formed request header: a handler's error becomes an errno reply
 *   via `toErrno` (unknown errors are logged with their stack, then EIO), as does a reply that carries
 *   an errno (`errnoReply`); unknown opcodes get ENOSYS.
 * - FORGET, BATCH_FORGET and INTERRUPT never get a reply, not even an error.
 * - No I/O on the device here; loop.ts reads requests and writes what this returns.
 * - Every request that may add, remove or rename a name (any opcode not in KEEPS_NAMES) tells the
 *   handle-less listings (listings.ts) before it runs; the directories a copy-up changed meanwhile (the
 *   core reports them: `takeChanged`) get their attributes invalidated before the reply.
 */
import { fsError, isReported, toErrno } from "../../errors";
import { logLine } from "./log";
import { Reader, decodeInHeader } from "./codec";
import type { InHeader } from "./codec";
import { decodeInit, encodeInitOut, encodeMajorOnly, negotiate } from "./init";
import { dirHandlers } from "./ops-dirs";
import { entryHandlers } from "./ops-entries";
import { fileHandlers } from "./ops-files";
import { joinPath } from "./inodes";
import { Op, opName } from "./protocol";
import { toText } from "../../sys/bytes";
import { EMPTY } from "./session";
import type { Handler, Reply, Session } from "./session";
import { constants } from "node:os";

const ENOSYS = constants.errno.ENOSYS;

const init: Handler = (s, _h, r) => {
  const outcome = negotiate(decodeInit(r), {
    passthrough: s.wantsPassthrough,
    uring: s.wantsUring,
    // Zero-message opendir lets the kernel answer every listing from its cache.
    cachedListings: s.ops.listingsTouchEveryTime?.() !== true,
  });
  if (outcome.kind === "retry") return { parts: [encodeMajorOnly(outcome.major)] };
  if (outcome.kind === "unsupported") throw fsError("EPROTO", outcome.why);
  s.negotiated(outcome.neg);
  return { parts: [encodeInitOut(outcome.neg)] };
};

const destroy: Handler = (s) => {
  s.destroy();
  return EMPTY;
};

const handlers: ReadonlyMap<number, Handler> = new Map([
  ...entryHandlers,
  ...fileHandlers,
  ...dirHandlers,
  [Op.INIT, init],
  [Op.DESTROY, destroy],
  [Op.INTERRUPT, () => null], // requests are served one at a time, there is never one to interrupt
]);

const NO_REPLY = new Set<number>([Op.FORGET, Op.BATCH_FORGET, Op.INTERRUPT]);

/** Opcodes that never change which names a directory holds (copy-up keeps every name). */
const KEEPS_NAMES = new Set<number>([
  Op.LOOKUP,
  Op.FORGET,
  Op.BATCH_FORGET,
  Op.GETATTR,
  Op.SETATTR,
  Op.READLINK,
  Op.OPEN,
  Op.READ,
  Op.WRITE,
  Op.STATFS,
  Op.RELEASE,
  Op.FSYNC,
  Op.SETXATTR,
  Op.GETXATTR,
  Op.LISTXATTR,
  Op.REMOVEXATTR,
  Op.FLUSH,
  Op.OPENDIR,
  Op.READDIR,
  Op.READDIRPLUS,
  Op.RELEASEDIR,
  Op.FSYNCDIR,
  Op.ACCESS,
  Op.INTERRUPT,
  Op.FALLOCATE,
  Op.LSEEK,
]);

export interface Outcome {
  h: InHeader;
  /** null: send nothing. */
  reply: Reply | null;
  /** Positive errno sent with an empty reply, or 0. */
  errno: number;
}

export function dispatch(
  s: Session,
  request: Buffer,
  logUnknown: (err: unknown, h: InHeader) => void,
): Outcome {
  const h = decodeInHeader(request);
  const handler = handlers.get(h.opcode);
  if (handler === undefined) return { h, reply: EMPTY, errno: ENOSYS };
  if (!KEEPS_NAMES.has(h.opcode)) s.listings.changed();
  let out: Outcome;
  try {
    const reply = handler(s, h, Reader.forRequest(request, h));
    out = { h, reply, errno: reply?.errno ?? 0 };
  } catch (err) {
    const errno = toErrno(err, (e) => logUnknown(e, h));
    if (isReported(err)) logReported(s, h, err);
    out = { h, reply: NO_REPLY.has(h.opcode) ? null : EMPTY, errno };
  }
  const changed = s.ops.takeChanged?.();
  if (changed !== undefined) for (const path of changed) s.dirChanged(path);
  return out;
}

/** One log line for a failure worth reporting: the request, its node's path, the error. */
function logReported(s: Session, h: InHeader, err: unknown): void {
  let where = "?";
  try {
    where = toText(s.table.path(h.nodeid, true));
  } catch {
    // a node the table no longer knows: the error still gets its line
  }
  logLine(
    `${opName(h.opcode)} ${JSON.stringify(where)} (uid ${h.uid}, pid ${h.pid}): ${(err as Error).message}`,
    "error",
  );
}

/** Opcodes whose only argument is a name: the debug log shows the child's path for them. */
const NAME_ONLY = new Set<number>([Op.LOOKUP, Op.UNLINK, Op.RMDIR, Op.REMOVEXATTR]);

/** "LOOKUP node=1 /a/b" for the debug log; never throws. */
export function describe(s: Session, request: Buffer): string {
  try {
    const h = decodeInHeader(request);
    let where: string;
    try {
      where = s.table.path(h.nodeid, true);
      if (NAME_ONLY.has(h.opcode)) {
        const name = Reader.forRequest(request, h).name();
        where = h.opcode === Op.REMOVEXATTR ? `${where} ${name}` : joinPath(where, name);
      } else if (h.opcode === Op.GETXATTR) {
        const r = Reader.forRequest(request, h);
        r.skip(8); // fuse_getxattr_in: size, padding
        where = `${where} ${r.name()}`;
      }
    } catch {
      where = "?";
    }
    return `${opName(h.opcode)} #${h.unique} node=${h.nodeid} ${JSON.stringify(toText(where))}`;
  } catch {
    return "(bad request)";
  }
}
