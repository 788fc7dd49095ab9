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
 * - Header blocks and PAX records are decoded by the one tar decoder (layer/tar/header.ts, pax.ts), the
 *   tar-layer scan's too; this module owns only the streaming and its own error wording.
 */
import { BLOCK, checksumOk, decoding, isZeroBlock, parseHeader, type Header } from "../layer/tar/header";
import { Extended, isMeta, MAX_META, paxNumber, paxTimeNs, paxXattrs } from "../layer/tar/pax";
import { toText } from "../sys/bytes";

export type TarType =
  "File" | "Link" | "SymbolicLink" | "CharacterDevice" | "BlockDevice" | "Directory" | "FIFO" | "Unsupported";

export interface TarEntry {
  type: TarType;
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
  /** Extended attributes, name (text) → value. */
  xattrs: Map<string, Buffer>;
}

export class TarFormatError extends Error {
  override name = "TarFormatError";
}

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

/** `fn()`, a malformed field or record refused as a TarFormatError naming the header's offset. */
function worded<T>(at: number, fn: () => T): T {
  return decoding(fn, (message) => new TarFormatError(`${message} in the header at byte ${at}`));
}

/** A pax number when the records hold `key`. */
function numberOf(pax: ReadonlyMap<string, string>, key: string): number | undefined {
  const v = pax.get(key);
  return v === undefined ? undefined : paxNumber(v, key);
}

/** A pax time when the records hold `key`, in seconds (fractional). */
function secondsOf(pax: ReadonlyMap<string, string>, key: string): number | undefined {
  const v = pax.get(key);
  return v === undefined ? undefined : Number(paxTimeNs(v, key)) / 1e9;
}

/** Extended attributes with their names as text. */
function textXattrs(pax: ReadonlyMap<string, string>): Map<string, Buffer> {
  return new Map([...paxXattrs(pax)].map(([name, value]) => [toText(name), value]));
}

/** The entry `h` describes once the extended headers before it apply. */
function applyExtended(h: Header, pax: ReadonlyMap<string, string>): TarEntry {
  const path = pax.get("path") ?? h.name;
  let type: TarType = TYPES[h.typeflag] ?? "Unsupported";
  if (type === "File" && h.typeflag !== "7" && path.endsWith("/")) type = "Directory";
  return {
    path,
    type,
    typeflag: h.typeflag,
    linkpath: pax.get("linkpath") ?? h.linkname,
    mode: h.mode,
    uid: numberOf(pax, "uid") ?? h.uid,
    gid: numberOf(pax, "gid") ?? h.gid,
    size: numberOf(pax, "size") ?? h.size,
    mtime: secondsOf(pax, "mtime") ?? h.mtime,
    atime: secondsOf(pax, "atime") ?? h.atime,
    devmajor: numberOf(pax, "SCHILY.devmajor") ?? h.devmajor,
    devminor: numberOf(pax, "SCHILY.devminor") ?? h.devminor,
    xattrs: textXattrs(pax),
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
  const extended = new Extended();
  let count = 0;
  let blocks = 0;
  for (;;) {
    const at = reader.offset;
    const block = await reader.exact(BLOCK);
    if (block === undefined) {
      if (blocks === 0) throw new TarFormatError("it is empty");
      if (extended.pending) throw new TarFormatError(`unexpected end of archive at byte ${at}`);
      return count;
    }
    if (isZeroBlock(block)) {
      if (blocks === 0) throw new TarFormatError("it starts with a zero block");
      await reader.drain();
      return count;
    }
    if (!checksumOk(block)) {
      throw new TarFormatError(blocks === 0 ? "not a tar header" : `bad header checksum at byte ${at}`);
    }
    blocks += 1;
    const h = worded(at, () => parseHeader(block));
    if (isMeta(h.typeflag)) {
      const padded = Math.ceil(h.size / BLOCK) * BLOCK;
      if (h.size > MAX_META) throw new TarFormatError(`extended header of ${h.size} bytes at byte ${at}`);
      const body = (await reader.exact(padded)) ?? Buffer.alloc(0);
      if (body.length < h.size) throw new TarFormatError(`unexpected end of archive at byte ${at}`);
      worded(at, () => extended.add(h.typeflag, body.subarray(0, h.size)));
      continue;
    }
    const entry = worded(at, () => applyExtended(h, extended.take()));
    // A directory's size field is not a body length (some tars store stat's), but GNU dump dirs have one.
    const bodySize = h.typeflag === "5" ? 0 : entry.size;
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
