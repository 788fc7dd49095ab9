/**
 * Reading a tar stream entry by entry, names and link targets as raw bytes: POSIX ustar and pax
 * (`x`, `g`; `SCHILY.xattr.*` and `LIBARCHIVE.xattr.*` records kept as extended attributes), GNU
 * (`L`/`K` long names, device numbers, base-256 numbers) and old v7 headers.
 *
 * Invariants:
 * - Paths and link targets are byte strings (`src/sys/bytes.ts`) exactly as the archive holds them;
 *   nothing here normalises, strips or judges them (the caller does).
 * - Entries are handed over one at a time, each with its data as an async iterable of chunks, read
 *   from the input only as the consumer asks (backpressure); whatever the consumer leaves unread is
 *   skipped before the next header is read.
 * - A stream whose first block is not a tar header is `TarFormatError` "not a tar archive"; a bad
 *   checksum later, a truncated entry or a malformed extended header is `TarFormatError` too, with the
 *   byte offset. End of archive: a zero block or the end of input at a header boundary.
 */
import { bstr } from "../sys/bytes";
import { decodeRecords, PaxError, xattrsOfRecords } from "./pax";

export type TarType =
  "File" | "Link" | "SymbolicLink" | "CharacterDevice" | "BlockDevice" | "Directory" | "FIFO" | "Unsupported";

/** What a header block says, before extended headers apply. */
interface RawHeader {
  /** Byte string, as the archive names it. */
  path: string;
  /** The header's type flag, for messages about unsupported entries. */
  typeflag: string;
  /** Byte string: a symlink's target or a hard link's first name; "" for other entries. */
  linkpath: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional when a pax header says so). */
  mtime: number;
  atime: number | undefined;
  devmajor: number;
  devminor: number;
}

export interface TarEntry extends RawHeader {
  type: TarType;
  /** Extended attributes, name (text) → value. */
  xattrs: Map<string, Buffer>;
}

export class TarFormatError extends Error {
  override name = "TarFormatError";
}

const BLOCK = 512;
/** Largest extended header or GNU long name accepted (xattr values are at most 64 KiB each). */
const MAX_META = 16 * 1024 * 1024;

const TYPES: Record<string, TarType> = {
  "0": "File",
  "\0": "File",
  "7": "File",
  "1": "Link",
  "2": "SymbolicLink",
  "3": "CharacterDevice",
  "4": "BlockDevice",
  "5": "Directory",
  D: "Directory",
  "6": "FIFO",
};

/** Pulls exact byte counts out of a chunked input. */
class ByteReader {
  private cur: Buffer = Buffer.alloc(0);
  private pos = 0;
  private ended = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private get available(): number {
    return this.cur.length - this.pos;
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.cur = this.available > 0 ? Buffer.concat([this.cur.subarray(this.pos), chunk]) : chunk;
    this.pos = 0;
    return true;
  }

  /** Exactly `n` bytes; undefined at the end of input; TarFormatError when it ends in between. */
  async exact(n: number): Promise<Buffer | undefined> {
    while (this.available < n) if (!(await this.more())) break;
    if (this.available === 0 && n > 0) return undefined;
    if (this.available < n) throw new TarFormatError(`unexpected end of archive at byte ${this.offset}`);
    const out = this.cur.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return out;
  }

  /** Between 1 and `n` bytes (n > 0); TarFormatError at the end of input. */
  async upTo(n: number): Promise<Buffer> {
    if (this.available === 0 && !(await this.more())) {
      throw new TarFormatError(`unexpected end of archive at byte ${this.offset}`);
    }
    const take = Math.min(n, this.available);
    const out = this.cur.subarray(this.pos, this.pos + take);
    this.pos += take;
    this.offset += take;
    return out;
  }

  async skip(n: number): Promise<void> {
    for (let left = n; left > 0;) left -= (await this.upTo(left)).length;
  }

  async drain(): Promise<void> {
    this.pos = this.cur.length;
    while (await this.more()) this.pos = this.cur.length;
  }
}

/** The bytes of a NUL-terminated field, as a byte string. */
function field(b: Buffer, off: number, len: number): string {
  const slice = b.subarray(off, off + len);
  const nul = slice.indexOf(0);
  return bstr(nul < 0 ? slice : slice.subarray(0, nul));
}

/** A numeric field: octal text, or GNU base-256 when the high bit of the first byte is set. */
function num(b: Buffer, off: number, len: number, at: number): number {
  const first = b[off] as number;
  if (first & 0x80) {
    if (first === 0xff) throw new TarFormatError(`negative number in the header at byte ${at}`);
    let v = first & 0x7f;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + (b[i] as number);
    return v;
  }
  const text = b
    .toString("latin1", off, off + len)
    .replace(/\0.*$/s, "")
    .trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`bad number '${text}' in the header at byte ${at}`);
  return parseInt(text, 8);
}

function checksumOk(b: Buffer, at: number): boolean {
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    const v = b[i] as number;
    unsigned += v;
    signed += v >= 0x80 ? v - 0x100 : v;
  }
  const text = b.toString("latin1", 148, 156).replace(/\0.*$/s, "").trim();
  if (!/^[0-7]+$/.test(text)) return false;
  const stored = num(b, 148, 8, at);
  return stored === unsigned || stored === signed;
}

function decodeHeader(b: Buffer, at: number): RawHeader {
  const magic = b.toString("latin1", 257, 263);
  const posix = magic === "ustar\0";
  const gnu = magic === "ustar ";
  let path = field(b, 0, 100);
  const prefix = posix ? field(b, 345, 155) : "";
  if (prefix !== "") path = `${prefix}/${path}`;
  const gnuAtime = gnu ? num(b, 345, 12, at) : 0;
  return {
    path,
    typeflag: String.fromCharCode(b[156] as number),
    linkpath: field(b, 157, 100),
    mode: num(b, 100, 8, at) & 0o7777,
    uid: num(b, 108, 8, at),
    gid: num(b, 116, 8, at),
    size: num(b, 124, 12, at),
    mtime: num(b, 136, 12, at),
    atime: gnuAtime > 0 ? gnuAtime : undefined,
    devmajor: posix || gnu ? num(b, 329, 8, at) : 0,
    devminor: posix || gnu ? num(b, 337, 8, at) : 0,
  };
}

/** A decimal pax value (sizes, ids, times with an optional fraction). */
function paxNumber(records: ReadonlyMap<string, Buffer>, key: string): number | undefined {
  const v = records.get(key);
  if (v === undefined) return undefined;
  const text = v.toString("latin1");
  if (!/^-?[0-9]+(\.[0-9]*)?$/.test(text)) throw new TarFormatError(`bad pax value ${key}=${text}`);
  return Number(text);
}

/** The entry `raw` describes once the extended headers before it apply. */
function applyExtended(raw: RawHeader, pax: ReadonlyMap<string, Buffer>): TarEntry {
  const path = pax.get("path");
  const linkpath = pax.get("linkpath");
  let type: TarType = TYPES[raw.typeflag] ?? "Unsupported";
  const finalPath = path === undefined ? raw.path : bstr(path);
  if (type === "File" && raw.typeflag !== "7" && finalPath.endsWith("/")) type = "Directory";
  return {
    path: finalPath,
    type,
    typeflag: raw.typeflag,
    linkpath: linkpath === undefined ? raw.linkpath : bstr(linkpath),
    mode: raw.mode,
    uid: paxNumber(pax, "uid") ?? raw.uid,
    gid: paxNumber(pax, "gid") ?? raw.gid,
    size: paxNumber(pax, "size") ?? raw.size,
    mtime: paxNumber(pax, "mtime") ?? raw.mtime,
    atime: paxNumber(pax, "atime") ?? raw.atime,
    devmajor: paxNumber(pax, "SCHILY.devmajor") ?? raw.devmajor,
    devminor: paxNumber(pax, "SCHILY.devminor") ?? raw.devminor,
    xattrs: xattrsOfRecords(pax),
  };
}

/**
 * Reads the tar stream `input` to its end, calling `onEntry` for each entry (extended headers and
 * long-name entries are applied, not handed over). Returns the number of entries.
 */
export async function readTar(
  input: AsyncIterable<Buffer>,
  onEntry: (entry: TarEntry, data: AsyncIterable<Buffer>) => Promise<void>,
): Promise<number> {
  const reader = new ByteReader(input[Symbol.asyncIterator]());
  let global = new Map<string, Buffer>();
  let local = new Map<string, Buffer>();
  let count = 0;
  let blocks = 0;
  for (;;) {
    const at = reader.offset;
    const block = await reader.exact(BLOCK);
    if (block === undefined) {
      if (blocks === 0) throw new TarFormatError("it is empty");
      if (local.size > 0) throw new TarFormatError(`unexpected end of archive at byte ${at}`);
      return count;
    }
    if (block.every((b) => b === 0)) {
      if (blocks === 0) throw new TarFormatError("it starts with a zero block");
      await reader.drain();
      return count;
    }
    if (!checksumOk(block, at)) {
      throw new TarFormatError(blocks === 0 ? "not a tar header" : `bad header checksum at byte ${at}`);
    }
    blocks += 1;
    const raw = decodeHeader(block, at);
    if ("xgLK".includes(raw.typeflag)) {
      const padded = Math.ceil(raw.size / BLOCK) * BLOCK;
      if (raw.size > MAX_META) throw new TarFormatError(`extended header of ${raw.size} bytes at byte ${at}`);
      const body = Buffer.from((await reader.exact(padded)) ?? Buffer.alloc(0)).subarray(0, raw.size);
      if (body.length < raw.size) throw new TarFormatError(`unexpected end of archive at byte ${at}`);
      local = metaRecords(
        raw.typeflag,
        body,
        local,
        at,
        (records) => (global = new Map([...global, ...records])),
      );
      continue;
    }
    const entry = applyExtended(raw, new Map([...global, ...local]));
    local = new Map();
    // A directory's size field is not a body length (some tars store stat's), but GNU dump dirs have one.
    const bodySize = raw.typeflag === "5" ? 0 : entry.size;
    let left = bodySize;
    const data: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<Buffer>> => {
          if (left === 0) return { done: true, value: undefined };
          const chunk = await reader.upTo(left);
          left -= chunk.length;
          return { done: false, value: chunk };
        },
      }),
    };
    await onEntry(entry, data);
    count += 1;
    await reader.skip(left + Math.ceil(bodySize / BLOCK) * BLOCK - bodySize);
  }
}

/** The pending local records after a meta entry (`x`, `g`, `L`, `K`) with `body`. */
function metaRecords(
  typeflag: string,
  body: Buffer,
  local: Map<string, Buffer>,
  at: number,
  setGlobal: (records: Map<string, Buffer>) => void,
): Map<string, Buffer> {
  const out = new Map(local);
  if (typeflag === "L" || typeflag === "K") {
    const nul = body.indexOf(0);
    out.set(typeflag === "L" ? "path" : "linkpath", Buffer.from(nul < 0 ? body : body.subarray(0, nul)));
    return out;
  }
  let records: Map<string, Buffer>;
  try {
    records = decodeRecords(body);
  } catch (err) {
    if (err instanceof PaxError)
      throw new TarFormatError(`${err.message} of the extended header at byte ${at}`);
    throw err;
  }
  if (typeflag === "g") {
    setGlobal(records);
    return out;
  }
  for (const [k, v] of records) out.set(k, v);
  return out;
}
