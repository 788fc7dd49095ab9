/**
 * One 512-byte tar header block (v7, ustar, GNU) and the PAX extended-header records that amend it.
 *
 * Invariants:
 * - Names, link names and PAX values are byte strings (one char per byte, sys/bytes.ts): nothing here
 *   decodes UTF-8, so any name round-trips.
 * - Numeric fields are octal or GNU base-256 (positive and negative); a field that is neither, or a
 *   checksum that matches neither the unsigned nor the signed sum, throws an `ArchiveError`.
 * - Nothing here reads the stream: the scanner (scan.ts) hands in blocks and record bytes.
 */
import { bstr } from "../../sys/bytes";

export const BLOCK = 512;

/** A refusal of the archive: corrupt, unsupported, or a member that would escape the root. One line. */
export class ArchiveError extends Error {
  override readonly name = "ArchiveError";
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
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** ustar's name prefix joined, or GNU's atime/ctime where it records them (seconds). */
  atime?: number;
  ctime?: number;
}

/** The bytes up to the first NUL (or all of them) as a byte string. */
function text(block: Buffer, at: number, len: number): string {
  const field = block.subarray(at, at + len);
  const end = field.indexOf(0);
  return bstr(end < 0 ? field : field.subarray(0, end));
}

/** A numeric field: octal digits (spaces and NULs around them), or base-256 when the top bit is set. */
export function numeric(block: Buffer, at: number, len: number, what: string): number {
  const first = block[at] as number;
  if (first & 0x80) return base256(block.subarray(at, at + len));
  let n = 0;
  let digits = 0;
  let i = at;
  const end = at + len;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  for (; i < end; i++) {
    const c = block[i] as number;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) throw new ArchiveError(`bad ${what} field in a tar header`);
    n = n * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : n;
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

function checksumOk(block: Buffer): boolean {
  const stored = numeric(block, 148, 8, "checksum");
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
  if (block.length < BLOCK || isZeroBlock(block)) return false;
  try {
    return checksumOk(block);
  } catch {
    return false;
  }
}

/** Parses a header block whose checksum was checked by the caller (`at` is its offset, for messages). */
export function parseHeader(block: Buffer, at: number): Header {
  if (!checksumOk(block)) throw new ArchiveError(`bad tar header checksum at offset ${at}`);
  const magic = block.toString("latin1", 257, 263);
  const gnu = magic === "ustar " && block[263] === 0x20;
  const prefix = magic === "ustar\0" ? text(block, 345, 155) : "";
  const name = text(block, 0, 100);
  const header: Header = {
    name: prefix.length > 0 ? `${prefix}/${name}` : name,
    mode: numeric(block, 100, 8, "mode"),
    uid: numeric(block, 108, 8, "uid"),
    gid: numeric(block, 116, 8, "gid"),
    size: numeric(block, 124, 12, "size"),
    mtime: numeric(block, 136, 12, "mtime"),
    typeflag: String.fromCharCode(block[156] as number),
    linkname: text(block, 157, 100),
    devmajor: numeric(block, 329, 8, "devmajor"),
    devminor: numeric(block, 337, 8, "devminor"),
  };
  if (gnu) {
    const atime = numeric(block, 345, 12, "atime");
    const ctime = numeric(block, 357, 12, "ctime");
    if (atime !== 0) header.atime = atime;
    if (ctime !== 0) header.ctime = ctime;
  }
  return header;
}

/**
 * The records of a PAX extended header (`LEN KEY=VALUE\n` each), in order; a later record for a key
 * overrides an earlier one. Keys and values are byte strings.
 */
export function parsePax(data: Buffer, at: number): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    const space = data.indexOf(0x20, i);
    const len = space < 0 ? NaN : Number(data.toString("latin1", i, space));
    if (
      !Number.isInteger(len) ||
      len <= space - i + 1 ||
      i + len > data.length ||
      data[i + len - 1] !== 0x0a
    ) {
      throw new ArchiveError(`bad PAX extended header at offset ${at}`);
    }
    const record = data.subarray(space + 1, i + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new ArchiveError(`bad PAX extended header at offset ${at}`);
    out.set(bstr(record.subarray(0, eq)), bstr(record.subarray(eq + 1)));
    i += len;
  }
  return out;
}

/** A PAX time (`SECONDS[.FRACTION]`, possibly negative) in nanoseconds. */
export function paxTimeNs(value: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value);
  if (m === null) throw new ArchiveError(`bad PAX time '${value}'`);
  const frac = ((m[3] ?? "") + "000000000").slice(0, 9);
  const ns = BigInt(m[2] as string) * 1_000_000_000n + BigInt(frac);
  return m[1] === "-" ? -ns : ns;
}

/** A PAX decimal number (size, uid, gid, device numbers). */
export function paxNumber(value: string, key: string): number {
  if (!/^\d+$/.test(value)) throw new ArchiveError(`bad PAX ${key} '${value}'`);
  return Number(value);
}
