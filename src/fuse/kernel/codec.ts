/**
 * Wire codecs: decode FUSE requests out of the read buffer, encode replies into fresh Buffers.
 *
 * Invariants:
 * - Pure functions of their arguments; little-endian, layouts exactly as in linux/fuse.h 7.38.
 * - A Reader never reads past its end (the request's length minus any extension area): a short request
 *   throws EINVAL instead of decoding bytes left over from an earlier request in the reused buffer.
 * - Names come out as byte strings (`bstr`), never decoded as UTF-8. Buffers a Reader hands out alias
 *   the read buffer and are only valid until the next request is read.
 * - 64-bit node ids and file handles are JS numbers (this transport only hands out values < 2^53);
 *   offsets, sizes, inode numbers and times are bigints.
 */
import type { Attr, SetAttrRequest, StatFs } from "../../unionfs/types";
import { bstr } from "../../sys/bytes";
import { fsError } from "../../errors";
import { Fattr, Size } from "./protocol";

const NS_PER_S = 1_000_000_000n;
const TWO_32 = 0x1_0000_0000;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
  /** Length of the extension area at the end of the request, in 8-byte units. */
  totalExtlen: number;
}

export function decodeInHeader(buf: Buffer): InHeader {
  if (buf.length < Size.IN_HEADER) throw fsError("EINVAL", `short request (${buf.length} bytes)`);
  return {
    len: buf.readUInt32LE(0),
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeid: buf.readUInt32LE(16) + buf.readUInt32LE(20) * TWO_32,
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
    totalExtlen: buf.readUInt16LE(36),
  };
}

/** Sequential reader over one request's argument area. */
export class Reader {
  constructor(
    private readonly buf: Buffer,
    private pos: number,
    private readonly end: number,
  ) {}

  /** The argument area of the request in `buf` (header and extensions excluded). */
  static forRequest(buf: Buffer, h: InHeader): Reader {
    const end = Math.min(h.len, buf.length) - h.totalExtlen * 8;
    return new Reader(buf, Size.IN_HEADER, Math.max(end, Size.IN_HEADER));
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private take(n: number): number {
    if (this.pos + n > this.end) throw fsError("EINVAL", "request shorter than its struct");
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }

  u64(): bigint {
    return this.buf.readBigUInt64LE(this.take(8));
  }

  /** A u64 that is known to be a node id or handle (< 2^53). */
  id(): number {
    const at = this.take(8);
    return this.buf.readUInt32LE(at) + this.buf.readUInt32LE(at + 4) * TWO_32;
  }

  skip(n: number): this {
    this.take(n);
    return this;
  }

  /** A NUL-terminated name as a byte string. */
  name(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) throw fsError("EINVAL", "unterminated name in request");
    const s = bstr(this.buf.subarray(this.pos, nul));
    this.pos = nul + 1;
    return s;
  }

  bytes(n: number): Buffer {
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }

  rest(): Buffer {
    return this.bytes(this.remaining);
  }
}

// ---- request structs --------------------------------------------------------------------------

export interface SetattrIn {
  req: SetAttrRequest;
  fh: number | undefined;
}

/** fuse_setattr_in → the core's request; "now" wins over an explicit time, ctime is never settable. */
export function decodeSetattr(r: Reader): SetattrIn {
  const valid = r.u32();
  r.skip(4);
  const fh = r.id();
  const size = r.u64();
  r.skip(8); // lock_owner
  const atime = r.u64();
  const mtime = r.u64();
  r.skip(8); // ctime
  const atimensec = r.u32();
  const mtimensec = r.u32();
  r.skip(4); // ctimensec
  const mode = r.u32();
  r.skip(4);
  const uid = r.u32();
  const gid = r.u32();
  const req: SetAttrRequest = {};
  if (valid & Fattr.MODE) req.mode = mode & 0o7777;
  if (valid & Fattr.UID) req.uid = uid;
  if (valid & Fattr.GID) req.gid = gid;
  if (valid & Fattr.SIZE) req.size = size;
  if (valid & Fattr.ATIME_NOW) req.atime = "now";
  else if (valid & Fattr.ATIME) req.atime = timeNs(atime, atimensec);
  if (valid & Fattr.MTIME_NOW) req.mtime = "now";
  else if (valid & Fattr.MTIME) req.mtime = timeNs(mtime, mtimensec);
  if (valid & Fattr.KILL_SUIDGID) req.killSuidgid = true;
  return { req, fh: valid & Fattr.FH ? fh : undefined };
}

/** Seconds (a u64 carrying an s64) and nanoseconds → nanoseconds since the epoch. */
export function timeNs(sec: bigint, nsec: number): bigint {
  return BigInt.asIntN(64, sec) * NS_PER_S + BigInt(nsec);
}

// ---- replies ----------------------------------------------------------------------------------

function put64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32LE(n % TWO_32, at);
  buf.writeUInt32LE(Math.floor(n / TWO_32), at + 4);
}

/** Splits nanoseconds since the epoch into (seconds, nanoseconds in [0, 1e9)). */
export function splitNs(ns: bigint): [bigint, number] {
  let sec = ns / NS_PER_S;
  let rem = ns - sec * NS_PER_S;
  if (rem < 0n) {
    sec -= 1n;
    rem += NS_PER_S;
  }
  return [sec, Number(rem)];
}

export function outHeader(len: number, errno: number, unique: bigint): Buffer {
  const b = Buffer.allocUnsafe(Size.OUT_HEADER);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(-errno, 4);
  b.writeBigUInt64LE(unique, 8);
  return b;
}

/**
 * A FUSE_NOTIFY_INVAL_INODE message: drop the cached attributes of node `nodeid`, and its pages unless
 * `attrsOnly` (a negative offset: the kernel then takes no page lock, so this may be sent while a
 * request on the node is pending).
 */
export function notifyInvalInode(nodeid: number, code: number, attrsOnly = false): Buffer {
  const b = Buffer.alloc(Size.OUT_HEADER + 24);
  b.writeUInt32LE(b.length, 0);
  b.writeInt32LE(code, 4);
  b.writeBigUInt64LE(0n, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  b.writeBigInt64LE(attrsOnly ? -1n : 0n, 24); // offset: from the start
  b.writeBigInt64LE(0n, 32); // length 0: to the end
  return b;
}

/** struct fuse_attr at `at`. */
export function writeAttr(buf: Buffer, at: number, a: Attr): void {
  const [as, ans] = splitNs(a.atimeNs);
  const [ms, mns] = splitNs(a.mtimeNs);
  const [cs, cns] = splitNs(a.ctimeNs);
  buf.writeBigUInt64LE(BigInt.asUintN(64, a.ino), at);
  buf.writeBigUInt64LE(BigInt.asUintN(64, a.size), at + 8);
  buf.writeBigUInt64LE(BigInt.asUintN(64, a.blocks), at + 16);
  buf.writeBigInt64LE(as, at + 24);
  buf.writeBigInt64LE(ms, at + 32);
  buf.writeBigInt64LE(cs, at + 40);
  buf.writeUInt32LE(ans, at + 48);
  buf.writeUInt32LE(mns, at + 52);
  buf.writeUInt32LE(cns, at + 56);
  buf.writeUInt32LE(a.mode >>> 0, at + 60);
  buf.writeUInt32LE(a.nlink >>> 0, at + 64);
  buf.writeUInt32LE(a.uid >>> 0, at + 68);
  buf.writeUInt32LE(a.gid >>> 0, at + 72);
  buf.writeUInt32LE(a.rdev >>> 0, at + 76);
  buf.writeUInt32LE(a.blksize >>> 0, at + 80);
  buf.writeUInt32LE(0, at + 84); // flags
}

function writeTimeout(buf: Buffer, secAt: number, nsecAt: number, seconds: number): void {
  const whole = Math.floor(seconds);
  put64(buf, secAt, whole);
  buf.writeUInt32LE(Math.min(999_999_999, Math.round((seconds - whole) * 1e9)), nsecAt);
}

/** struct fuse_entry_out at `at` (a zero node id with zeroed attributes when `attr` is null). */
export function writeEntryOut(
  buf: Buffer,
  at: number,
  nodeid: number,
  attr: Attr | null,
  entryTimeout: number,
  attrTimeout: number,
): void {
  if (attr === null) {
    buf.fill(0, at, at + Size.ENTRY_OUT);
    return;
  }
  put64(buf, at, nodeid);
  put64(buf, at + 8, attr.gen ?? 0); // generation
  writeTimeout(buf, at + 16, at + 32, entryTimeout);
  writeTimeout(buf, at + 24, at + 36, attrTimeout);
  writeAttr(buf, at + 40, attr);
}

export function entryOut(nodeid: number, attr: Attr, entryTimeout: number, attrTimeout: number): Buffer {
  const b = Buffer.allocUnsafe(Size.ENTRY_OUT);
  writeEntryOut(b, 0, nodeid, attr, entryTimeout, attrTimeout);
  return b;
}

export function attrOut(attr: Attr, attrTimeout: number): Buffer {
  const b = Buffer.allocUnsafe(Size.ATTR_OUT);
  writeTimeout(b, 0, 8, attrTimeout);
  b.writeUInt32LE(0, 12); // dummy
  writeAttr(b, 16, attr);
  return b;
}

/** fuse_open_out; `backingId` (7.40) matters only with FOPEN_PASSTHROUGH. */
export function openOut(fh: number, openFlags: number, backingId = 0): Buffer {
  const b = Buffer.alloc(Size.OPEN_OUT);
  put64(b, 0, fh);
  b.writeUInt32LE(openFlags >>> 0, 8);
  b.writeInt32LE(backingId, 12);
  return b;
}

export function statfsOut(s: StatFs): Buffer {
  const b = Buffer.alloc(Size.STATFS_OUT);
  b.writeBigUInt64LE(BigInt.asUintN(64, s.blocks), 0);
  b.writeBigUInt64LE(BigInt.asUintN(64, s.bfree), 8);
  b.writeBigUInt64LE(BigInt.asUintN(64, s.bavail), 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, s.files), 24);
  b.writeBigUInt64LE(BigInt.asUintN(64, s.ffree), 32);
  b.writeUInt32LE(s.bsize >>> 0, 40);
  b.writeUInt32LE(s.namelen >>> 0, 44);
  b.writeUInt32LE(s.frsize >>> 0, 48);
  return b;
}

/** fuse_write_out and fuse_getxattr_out share this shape: a u32 size and padding. */
export function sizeOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size >>> 0, 0);
  return b;
}

export function lseekOut(offset: bigint): Buffer {
  const b = Buffer.alloc(Size.LSEEK_OUT);
  b.writeBigUInt64LE(BigInt.asUintN(64, offset), 0);
  return b;
}
