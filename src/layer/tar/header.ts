/**
 * One 512-byte tar header block (v7, ustar, GNU), decoded for every reader of tar in the project: the
 * tar-layer index scan (scan.ts) and image import (image/tar-read.ts). PAX records are pax.ts's.
 *
 * Invariants:
 * - Names and link names are byte strings (one char per byte, sys/bytes.ts): nothing here decodes
 *   UTF-8, so any name round-trips.
 * - Numeric fields are octal (spaces and NULs around the digits) or GNU base-256; only times may be
 *   negative. A field that is none of these throws `TarHeaderError`, a neutral error without an offset
 *   that each reader words as its own (ArchiveError here, TarFormatError in image).
 * - Nothing here reads the stream and nothing checks the checksum behind the caller's back: readers
 *   hand in blocks, call `checksumOk` and word its refusal themselves.
 */
import { bstr } from "../../sys/bytes";

export const BLOCK = 512;

/** A refusal of the archive: corrupt, unsupported, or a member that would escape the root. One line. */
export class ArchiveError extends Error {
  override readonly name = "ArchiveError";
}

/** A malformed header field or PAX record; its reader rewords it with the offset (see the invariants). */
export class TarHeaderError extends Error {
  override readonly name = "TarHeaderError";
}

/** `fn()`, with a `TarHeaderError` it throws reworded by `reword` (the reader's own error and offset). */
export function decoding<T>(fn: () => T, reword: (message: string) => Error): T {
  try {
    return fn();
  } catch (err) {
    throw err instanceof TarHeaderError ? reword(err.message) : err;
  }
}

/** A byte-string name as one line of text for a message (UTF-8 decoded, control characters escaped). */
export function showName(b: string): string {
  let out = "";
  for (const ch of Buffer.from(b, "latin1").toString("utf8")) {
    const c = ch.codePointAt(0) as number;
    out += c < 0x20 || c === 0x7f ? `\\x${c.toString(16).padStart(2, "0")}` : ch;
  }
  return out;
}

export interface Header {
  /** ustar's name prefix joined. */
  name: string;
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  typeflag: string;
  linkname: string;
  /** 0 in a v7 header (no such fields). */
  devmajor: number;
  devminor: number;
  /** GNU's atime/ctime where it records them (seconds). */
  atime?: number;
  ctime?: number;
}

/** The bytes up to the first NUL (or all of them) as a byte string. */
export function cstring(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bstr(end < 0 ? bytes : bytes.subarray(0, end));
}

function text(block: Buffer, at: number, len: number): string {
  return cstring(block.subarray(at, at + len));
}

/** A numeric field: octal digits (spaces and NULs around them), or base-256 when the top bit is set. */
function numeric(block: Buffer, at: number, len: number, what: string, signed = false): number {
  const n = (block[at] as number) & 0x80 ? base256(block.subarray(at, at + len)) : octal(block, at, len);
  if (n === undefined) throw new TarHeaderError(`bad ${what} field`);
  if (n < 0 && !signed) throw new TarHeaderError(`negative ${what} field`);
  return n;
}

/** Octal digits between spaces and NULs (none: 0); undefined when anything else is there. */
function octal(block: Buffer, at: number, len: number): number | undefined {
  let n = 0;
  let i = at;
  const end = at + len;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  for (; i < end; i++) {
    const c = block[i] as number;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return undefined;
    n = n * 8 + (c - 0x30);
  }
  return n;
}

/** GNU's base-256: big-endian two's complement with the marker bit (0x80 positive, 0xff negative). */
function base256(field: Buffer): number {
  const negative = field[0] === 0xff;
  let n = 0;
  for (let i = 0; i < field.length; i++) {
    let b = field[i] as number;
    if (i === 0) b &= negative ? 0xff : 0x7f;
    n = n * 256 + (negative ? 0xff - b : b);
  }
  return negative ? -(n + 1) : n;
}

/** True when every byte of the block is zero (an end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 8) if (block.readBigUInt64LE(i) !== 0n) return false;
  return true;
}

/** True when the stored checksum (octal) matches the unsigned or the signed sum of the block. */
export function checksumOk(block: Buffer): boolean {
  if (block.length < BLOCK || (block[148] as number) & 0x80) return false;
  const stored = octal(block, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** True when `block` is a tar header (its checksum matches): how a plain tar is recognized. */
export function looksLikeHeader(block: Buffer): boolean {
  return block.length >= BLOCK && !isZeroBlock(block) && checksumOk(block);
}

/** The fields of a header block (whose checksum the caller checked). */
export function parseHeader(block: Buffer): Header {
  const magic = block.toString("latin1", 257, 263);
  const ustar = magic === "ustar\0";
  const gnu = magic === "ustar ";
  const prefix = ustar ? text(block, 345, 155) : "";
  const name = text(block, 0, 100);
  const header: Header = {
    name: prefix.length > 0 ? `${prefix}/${name}` : name,
    mode: numeric(block, 100, 8, "mode") & 0o7777,
    uid: numeric(block, 108, 8, "uid"),
    gid: numeric(block, 116, 8, "gid"),
    size: numeric(block, 124, 12, "size"),
    mtime: numeric(block, 136, 12, "mtime", true),
    typeflag: String.fromCharCode(block[156] as number),
    linkname: text(block, 157, 100),
    devmajor: ustar || gnu ? numeric(block, 329, 8, "devmajor") : 0,
    devminor: ustar || gnu ? numeric(block, 337, 8, "devminor") : 0,
  };
  if (gnu) {
    const atime = numeric(block, 345, 12, "atime", true);
    const ctime = numeric(block, 357, 12, "ctime", true);
    if (atime !== 0) header.atime = atime;
    if (ctime !== 0) header.ctime = ctime;
  }
  return header;
}
