/**
 * PAX extended header records (POSIX.1-2001 `x` and `g` entries) and GNU long names, read and written
 * in one place: the tar-layer scan (scan.ts) and image import (image/tar-read.ts) decode them here, the
 * image exporter (image/tar-write.ts) encodes them here. Extended attributes travel as
 * `SCHILY.xattr.NAME` records (GNU tar, libarchive, Docker, podman), and are read in libarchive's own
 * `LIBARCHIVE.xattr.NAME` form too.
 *
 * Invariants:
 * - A record is `LEN KEY=VALUE\n`, LEN counting the whole record in bytes (its own digits included).
 *   Decoded keys and values are byte strings (one char per byte, sys/bytes.ts), so binary values (NUL
 *   and newline included: capabilities, ACLs) and non-UTF-8 names round-trip; xattr values come out as
 *   Buffers.
 * - A malformed record or value throws `TarHeaderError` (header.ts); nothing is guessed.
 * - Encoding is deterministic: records in the order given, xattrs sorted by name.
 */
import { cstring, showName, TarHeaderError } from "./header";

export const XATTR_PREFIX = "SCHILY.xattr.";
const LIBARCHIVE_XATTR_PREFIX = "LIBARCHIVE.xattr.";

/** Largest PAX header or GNU long name accepted (xattr values are at most 64 KiB each). */
export const MAX_META = 16 * 1024 * 1024;

/** True for the entries that amend the next member rather than being one (PAX, GNU names, volume label). */
export function isMeta(typeflag: string): boolean {
  return typeflag.length === 1 && "xgLKV".includes(typeflag);
}

/**
 * The records of a PAX extended header body, in order; a later record for a key overrides an earlier
 * one. Padding NULs after the last record end it.
 */
export function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break;
    const space = data.indexOf(0x20, i);
    const len = space < 0 ? NaN : Number(data.toString("latin1", i, space));
    const end = i + len;
    const eq = data.indexOf(0x3d, space + 1);
    if (!Number.isInteger(len) || len <= space - i + 1 || end > data.length || data[end - 1] !== 0x0a) {
      throw new TarHeaderError(`bad PAX record at byte ${i}`);
    }
    if (eq < 0 || eq >= end) throw new TarHeaderError(`bad PAX record at byte ${i}`);
    out.set(data.toString("latin1", space + 1, eq), data.toString("latin1", eq + 1, end - 1));
    i = end;
  }
  return out;
}

/** A PAX time (`SECONDS[.FRACTION]`, possibly negative) in nanoseconds. */
export function paxTimeNs(value: string, key: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value);
  if (m === null) throw new TarHeaderError(`bad PAX ${key} '${showName(value)}'`);
  const frac = ((m[3] ?? "") + "000000000").slice(0, 9);
  const ns = BigInt(m[2] as string) * 1_000_000_000n + BigInt(frac);
  return m[1] === "-" ? -ns : ns;
}

/** A PAX decimal number (size, uid, gid, device numbers). */
export function paxNumber(value: string, key: string): number {
  if (!/^\d+$/.test(value)) throw new TarHeaderError(`bad PAX ${key} '${showName(value)}'`);
  return Number(value);
}

/** The extended attributes the records carry, byte-string name → value (SCHILY's first). */
export function paxXattrs(records: ReadonlyMap<string, string>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of records) {
    if (k.startsWith(XATTR_PREFIX)) out.set(k.slice(XATTR_PREFIX.length), Buffer.from(v, "latin1"));
    else if (k.startsWith(LIBARCHIVE_XATTR_PREFIX)) {
      const name = urlDecoded(k.slice(LIBARCHIVE_XATTR_PREFIX.length));
      if (!out.has(name)) out.set(name, Buffer.from(v, "base64"));
    }
  }
  return out;
}

/** A URL-encoded byte string, decoded byte for byte. */
function urlDecoded(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * What the meta entries before a member said of it: global PAX records until replaced, local ones
 * (`x`, and GNU `L`/`K` long names as `path`/`linkpath`) for the next member only; later wins.
 */
export class Extended {
  private readonly global = new Map<string, string>();
  private local = new Map<string, string>();

  /** True when local records await their member. */
  get pending(): boolean {
    return this.local.size > 0;
  }

  /** Takes in the body of a meta entry (see `isMeta`; a volume label says nothing of members). */
  add(typeflag: string, body: Buffer): void {
    if (typeflag === "x") for (const [k, v] of parsePax(body)) this.local.set(k, v);
    else if (typeflag === "g") for (const [k, v] of parsePax(body)) this.global.set(k, v);
    else if (typeflag === "L") this.local.set("path", cstring(body));
    else if (typeflag === "K") this.local.set("linkpath", cstring(body));
  }

  /** The records for the member that follows (local over global); the local ones are used up. */
  take(): Map<string, string> {
    const out = new Map([...this.global, ...this.local]);
    this.local = new Map();
    return out;
  }
}

/** One record: `LEN KEY=VALUE\n`. `key` is text (UTF-8); `value` bytes. */
export function encodeRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = rest.length + 1;
  while (String(len).length + rest.length > len) len += 1;
  return Buffer.concat([Buffer.from(String(len), "ascii"), rest]);
}

/** The body of an extended header holding `records`, in order. */
export function encodeRecords(records: ReadonlyArray<readonly [string, Buffer]>): Buffer {
  return Buffer.concat(records.map(([k, v]) => encodeRecord(k, v)));
}

/** `SCHILY.xattr.NAME` records for `xattrs` (names as text), sorted by name (deterministic exports). */
export function xattrRecords(xattrs: ReadonlyMap<string, Buffer>): Array<[string, Buffer]> {
  return [...xattrs.keys()]
    .sort()
    .map((name): [string, Buffer] => [XATTR_PREFIX + name, xattrs.get(name) as Buffer]);
}
