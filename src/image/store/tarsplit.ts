/**
 * tar-split: what it takes to rebuild a layer's tar byte for byte from its unpacked files, so that an
 * image saved again keeps its diff IDs (and so its image ID), without keeping the tar. Docker keeps the
 * same thing in `layerdb/sha256/<chain>/tar-split.json.gz`.
 *
 * The file is gzip-compressed JSON lines, one segment each, in archive order:
 *   {"type":2,"payload":"<base64>"}        bytes kept as they were: headers, pax records, padding, the end
 *   {"type":1,"name":"etc/passwd","size":N} N bytes of file data, read back from `<diff>/<name>`
 *
 * Invariants:
 * - Recording consumes the uncompressed tar stream with backpressure and keeps only headers, metadata
 *   entries (pax, GNU long names) and padding: the data of regular files is never held. Headers are
 *   decoded with node-tar's `Header` and `Pax` (pax and GNU long names applied as tar readers do).
 * - Rebuilding reads each file through a path below the diff directory that contains no `..` and no
 *   symlink; a file that is missing or shorter than recorded is an error (`TarSplitMismatch`), never
 *   silently padded. Callers verify the result's digest against the layer's diff ID anyway.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import * as readline from "node:readline";
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import { Header, Pax, type HeaderData } from "tar";

const BLOCK = 512;
/** Raw bytes are written out as a segment once this many are pending (bounds memory). */
const RAW_FLUSH = 1 << 20;

export const SEGMENT = 2;
export const FILE = 1;

type Segment = { type: typeof SEGMENT; payload: string } | { type: typeof FILE; name: string; size: number };

export class TarSplitMismatch extends Error {}

/** Entry types whose data describes the next entry (pax records, GNU long names). */
const META_TYPES = new Set([
  "ExtendedHeader",
  "GlobalExtendedHeader",
  "NextFileHasLongPath",
  "NextFileHasLongLinkpath",
  "OldGnuLongPath",
]);
const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * A writable that takes a layer's uncompressed tar stream and writes its tar-split to `file`. Errors
 * (not a tar, a truncated one) fail the stream.
 */
export class TarSplitRecorder extends Writable {
  private readonly gzip = createGzip();
  private readonly out: fs.WriteStream;
  private readonly outDone: Promise<void>;
  private raw: Buffer[] = [];
  private rawBytes = 0;
  private header = Buffer.alloc(0);
  /** What is being read: a header, data (file data skipped, or kept raw), padding, or the end blocks. */
  private state: "header" | "file" | "raw" | "meta" | "pad" | "trailer" = "header";
  private remaining = 0;
  private padAfter = 0;
  private meta: Buffer[] = [];
  private metaType = "";
  private ex: HeaderData | undefined;
  private gex: HeaderData | undefined;
  /** Entries seen (metadata entries not counted) and bytes of regular-file data. */
  entries = 0;
  fileBytes = 0;

  constructor(file: string) {
    super();
    this.out = fs.createWriteStream(file, { mode: 0o600 });
    this.gzip.pipe(this.out);
    this.outDone = finished(this.out);
    this.outDone.catch(() => undefined);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    try {
      this.consume(chunk);
      this.flushIfLarge(done);
    } catch (err) {
      done(err as Error);
    }
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.state !== "header" && this.state !== "trailer") {
      done(new Error("the layer's tar stream ends in the middle of an entry"));
      return;
    }
    this.keep(this.header);
    this.flushRaw();
    this.gzip.end();
    this.outDone.then(() => done(), done);
  }

  private flushIfLarge(done: (err?: Error | null) => void): void {
    if (this.rawBytes < RAW_FLUSH) return done();
    if (this.flushRaw()) done();
    else this.gzip.once("drain", () => done());
  }

  private segment(seg: Segment): boolean {
    return this.gzip.write(`${JSON.stringify(seg)}\n`);
  }

  private flushRaw(): boolean {
    if (this.rawBytes === 0) return true;
    const payload = Buffer.concat(this.raw).toString("base64");
    this.raw = [];
    this.rawBytes = 0;
    return this.segment({ type: SEGMENT, payload });
  }

  private keep(b: Buffer): void {
    if (b.length === 0) return;
    this.raw.push(Buffer.from(b));
    this.rawBytes += b.length;
  }

  private consume(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === "trailer") {
        this.keep(chunk.subarray(at));
        return;
      }
      if (this.state === "header") {
        const need = BLOCK - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (this.header.length === BLOCK) this.onHeader();
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - at);
      const part = chunk.subarray(at, at + n);
      at += n;
      this.remaining -= n;
      if (this.state !== "file") this.keep(part);
      if (this.state === "meta") this.meta.push(Buffer.from(part));
      if (this.remaining === 0) this.endData();
    }
  }

  private onHeader(): void {
    const block = this.header;
    this.header = Buffer.alloc(0);
    this.keep(block);
    if (block.every((b) => b === 0)) {
      this.state = "trailer";
      return;
    }
    const h = new Header(block, 0, this.ex, this.gex);
    if (!h.cksumValid) throw new Error("not a tar stream (bad header checksum)");
    const size = h.size ?? 0;
    const type = h.type;
    if (META_TYPES.has(type)) {
      this.metaType = type;
      this.meta = [];
      this.begin("meta", size);
      return;
    }
    this.entries += 1;
    this.ex = undefined;
    if (FILE_TYPES.has(type) && size > 0) {
      this.flushRaw();
      this.segment({ type: FILE, name: h.path ?? "", size });
      this.fileBytes += size;
      this.begin("file", size);
    } else this.begin("raw", size);
  }

  /** Starts reading `size` bytes of data, then its padding to a whole block. */
  private begin(state: "file" | "raw" | "meta", size: number): void {
    this.state = state;
    this.remaining = size;
    this.padAfter = pad(size);
    if (size === 0) this.endData();
  }

  /** The data (or the padding after it) has been read. */
  private endData(): void {
    if (this.state === "meta") this.applyMeta();
    if (this.state !== "pad" && this.padAfter > 0) {
      this.state = "pad";
      this.remaining = this.padAfter;
      this.padAfter = 0;
      return;
    }
    this.state = "header";
  }

  private applyMeta(): void {
    const text = Buffer.concat(this.meta).toString("utf8");
    this.meta = [];
    if (this.metaType === "ExtendedHeader") this.ex = Pax.parse(text, this.ex, false);
    else if (this.metaType === "GlobalExtendedHeader") this.gex = Pax.parse(text, this.gex, true);
    else {
      const value = text.replace(/\0.*/s, "");
      const key = this.metaType === "NextFileHasLongLinkpath" ? "linkpath" : "path";
      this.ex = { ...this.ex, [key]: value };
    }
  }
}

/**
 * `<root>/<name>` for a tar name when it is a regular file reached without `..` or any symlink on the
 * way; undefined otherwise.
 */
function fileBelow(root: string, name: string): string | undefined {
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) return undefined;
  let cur = root;
  let st: fs.Stats | undefined;
  for (const part of parts) {
    cur = nodePath.join(cur, part);
    st = fs.lstatSync(cur, { throwIfNoEntry: false });
    if (st === undefined || st.isSymbolicLink()) return undefined;
  }
  return st?.isFile() === true ? cur : undefined;
}

/** Exactly `size` bytes of `file`, in chunks; TarSplitMismatch when it holds fewer. */
async function* fileData(file: string, size: number, name: string): AsyncGenerator<Buffer> {
  let sent = 0;
  const stream = fs.createReadStream(file, { start: 0, end: size - 1 });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    sent += chunk.length;
    yield chunk;
  }
  if (sent !== size) throw new TarSplitMismatch(`'${name}' is shorter than the layer's tar recorded`);
}

/** The layer's tar, rebuilt from its tar-split and its unpacked files in `diffDir`. */
export async function* rebuildTar(splitFile: string, diffDir: string): AsyncGenerator<Buffer> {
  const lines = readline.createInterface({
    input: fs.createReadStream(splitFile).pipe(createGunzip()),
    crlfDelay: Infinity,
  });
  for await (const line of lines) {
    if (line === "") continue;
    const seg = JSON.parse(line) as Segment;
    if (seg.type === SEGMENT) {
      yield Buffer.from(seg.payload, "base64");
      continue;
    }
    const file = fileBelow(diffDir, seg.name);
    if (file === undefined) throw new TarSplitMismatch(`'${seg.name}' is not in the layer`);
    yield* fileData(file, seg.size, seg.name);
  }
}
