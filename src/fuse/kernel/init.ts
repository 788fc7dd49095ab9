/**
 * INIT negotiation: what the kernel offers → the init_out this transport answers with.
 *
 * Invariants: the minor version answered is min(kernel's, PROTO_MINOR); a flag is granted only when the
 * kernel offered it and WANTED_INIT_FLAGS asks for it; flags2 is sent (and INIT_EXT set) only when the
 * kernel offered INIT_EXT; the reply's size is the one the negotiated minor defines.
 */
import type { Reader } from "./codec";
import {
  Init,
  Init2,
  MAX_PAGES,
  MAX_WRITE,
  MIN_MINOR,
  PROTO_MAJOR,
  PASSTHROUGH_STACK_DEPTH,
  PROTO_MINOR,
  Size,
  WANTED_INIT_FLAGS,
  WANTED_INIT_FLAGS2,
} from "./protocol";

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  /** Zero unless the kernel set INIT_EXT. */
  flags2: number;
}

export function decodeInit(r: Reader): InitIn {
  const major = r.u32();
  const minor = r.u32();
  const maxReadahead = r.u32();
  const flags = r.u32();
  const flags2 = flags & Init.INIT_EXT && r.remaining >= 4 ? r.u32() : 0;
  return { major, minor, maxReadahead, flags, flags2 };
}

export interface Negotiated {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  flags2: number;
  maxWrite: number;
  maxPages: number;
}

/**
 * "retry": the kernel speaks a newer major; answer with our major only and wait for another INIT.
 * "unsupported": too old a kernel (errno EPROTO).
 */
export type InitOutcome =
  { kind: "ok"; neg: Negotiated } | { kind: "retry"; major: number } | { kind: "unsupported"; why: string };

/** What this mount wants beyond the fixed WANTED_INIT_FLAGS. */
export interface InitWants {
  passthrough: boolean;
  /** Serve through io_uring when the kernel offers it (uring.ts). */
  uring?: boolean;
  /** false: never NO_OPENDIR_SUPPORT (every listing must reach the daemon: strictatime). */
  cachedListings?: boolean;
}

export function negotiate(k: InitIn, wants: InitWants = { passthrough: false }): InitOutcome {
  if (k.major > PROTO_MAJOR) return { kind: "retry", major: PROTO_MAJOR };
  if (k.major < PROTO_MAJOR || k.minor < MIN_MINOR) {
    return { kind: "unsupported", why: `kernel FUSE protocol ${k.major}.${k.minor} is too old` };
  }
  const ext = (k.flags & Init.INIT_EXT) !== 0;
  const flags =
    k.flags & WANTED_INIT_FLAGS & (wants.cachedListings === false ? ~Init.NO_OPENDIR_SUPPORT : ~0);
  const neg: Negotiated = {
    major: PROTO_MAJOR,
    minor: Math.min(k.minor, PROTO_MINOR),
    maxReadahead: k.maxReadahead,
    flags,
    flags2: ext
      ? k.flags2 &
        WANTED_INIT_FLAGS2 &
        (wants.passthrough ? ~0 : ~Init2.PASSTHROUGH) &
        (wants.uring === true ? ~0 : ~Init2.OVER_IO_URING)
      : 0,
    maxWrite: MAX_WRITE,
    maxPages: flags & Init.MAX_PAGES ? MAX_PAGES : 0,
  };
  return { kind: "ok", neg };
}

/** init_out for the negotiated minor: 24 bytes before 7.23, 64 from then on (7.40 adds max_stack_depth). */
export function encodeInitOut(n: Negotiated): Buffer {
  const b = Buffer.alloc(n.minor < 23 ? Size.INIT_OUT_COMPAT_22 : Size.INIT_OUT);
  b.writeUInt32LE(n.major, 0);
  b.writeUInt32LE(n.minor, 4);
  b.writeUInt32LE(n.maxReadahead >>> 0, 8);
  b.writeUInt32LE(n.flags >>> 0, 12);
  b.writeUInt16LE(0, 16); // max_background: kernel default
  b.writeUInt16LE(0, 18); // congestion_threshold: kernel default
  b.writeUInt32LE(n.maxWrite, 20);
  if (b.length > Size.INIT_OUT_COMPAT_22) {
    b.writeUInt32LE(1, 24); // time_gran: nanoseconds
    b.writeUInt16LE(n.maxPages, 28);
    b.writeUInt16LE(0, 30); // map_alignment
    b.writeUInt32LE(n.flags2 >>> 0, 32);
    if (n.flags2 & Init2.PASSTHROUGH) b.writeUInt32LE(PASSTHROUGH_STACK_DEPTH, 36); // max_stack_depth
  }
  return b;
}

/** The 8-byte answer that asks a newer kernel to retry INIT with our major. */
export function encodeMajorOnly(major: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(major, 0);
  b.writeUInt32LE(PROTO_MINOR, 4);
  return b;
}

/** Human summary of granted flags (and flags2), for the debug log. */
export function describeFlags(flags: number, flags2 = 0): string {
  const names = [
    ...Object.entries(Init).filter(([, bit]) => (flags & bit) !== 0),
    ...Object.entries(Init2).filter(([, bit]) => (flags2 & bit) !== 0),
  ].map(([name]) => name);
  return names.join("|") || "0";
}
