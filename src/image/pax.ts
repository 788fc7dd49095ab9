/**
 * PAX extended header records (POSIX.1-2001 `x` entries) as raw bytes, for what node-tar cannot carry:
 * extended attributes as `SCHILY.xattr.NAME` records, the form GNU tar, libarchive, Docker and podman
 * (Go's archive/tar) write and read.
 *
 * Invariants:
 * - A record is `LEN KEY=VALUE\n`, LEN counting the whole record in bytes (its own digits included);
 *   values are bytes and may hold anything, NUL and newline included (capabilities and ACLs are binary),
 *   so nothing here decodes a value as text.
 * - Decoding a malformed body throws `PaxError`; nothing is guessed.
 * - Encoding is deterministic: records in the order given.
 */

export const XATTR_PREFIX = "SCHILY.xattr.";
/** libarchive's own form (bsdtar): URL-encoded name, base64 value. Read, never written. */
const LIBARCHIVE_XATTR_PREFIX = "LIBARCHIVE.xattr.";

export class PaxError extends Error {
  override name = "PaxError";
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

/** The records of an extended header body, in order (a key given twice: the last wins, as POSIX says). */
export function decodeRecords(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break; // padding after the last record
    const space = body.indexOf(0x20, pos);
    const len = space < 0 ? NaN : Number(body.toString("ascii", pos, space));
    if (!Number.isInteger(len) || len <= space - pos + 1 || pos + len > body.length) {
      throw new PaxError(`bad extended header record at byte ${pos}`);
    }
    const end = pos + len;
    const eq = body.indexOf(0x3d, space + 1);
    if (body[end - 1] !== 0x0a || eq < 0 || eq >= end) {
      throw new PaxError(`bad extended header record at byte ${pos}`);
    }
    out.set(body.toString("utf8", space + 1, eq), Buffer.from(body.subarray(eq + 1, end - 1)));
    pos = end;
  }
  return out;
}

/** The extended attributes the records carry (SCHILY and libarchive forms), name → value. */
export function xattrsOfRecords(records: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [key, value] of records) {
    if (key.startsWith(XATTR_PREFIX)) out.set(key.slice(XATTR_PREFIX.length), value);
    else if (key.startsWith(LIBARCHIVE_XATTR_PREFIX)) {
      const name = decodeURIComponent(key.slice(LIBARCHIVE_XATTR_PREFIX.length));
      out.set(name, Buffer.from(value.toString("ascii"), "base64"));
    }
  }
  return out;
}

/** `SCHILY.xattr.NAME` records for `xattrs`, sorted by name (so exports are deterministic). */
export function xattrRecords(xattrs: ReadonlyMap<string, Buffer>): Array<[string, Buffer]> {
  return [...xattrs.keys()]
    .sort()
    .map((name): [string, Buffer] => [XATTR_PREFIX + name, xattrs.get(name) as Buffer]);
}
