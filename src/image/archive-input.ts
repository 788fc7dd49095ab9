/**
 * Where `import` reads an archive from: a file, a pipe (`-` is standard input; `/dev/stdin` and named
 * pipes work as files), or any stream; plain, gzip or zstd, told by the first bytes, never by the name.
 *
 * Invariants:
 * - The input is read once, front to back, as the consumer asks (nothing is read twice, so pipes work).
 * - zstd is read with Node's own decompressor where it has one (`zlib.createZstdDecompress`, Node ≥
 *   22.15 or 23.8); elsewhere a zstd input, like xz or bzip2, is refused with one line saying how to
 *   decompress it first. A damaged compressed stream is one line too (`ArchiveError`).
 * - `onBytes` sees every byte of the input as read (compressed bytes when compressed), for progress.
 * - `close()` stops reading and releases the input; it is safe to call at any time, more than once.
 */
import * as fs from "node:fs";
import { Readable } from "node:stream";
import * as zlib from "node:zlib";
import { codeOf } from "../errors";

export type Compression = "gzip" | "zstd" | "none";

export class ArchiveError extends Error {
  override name = "ArchiveError";
}

export interface ArchiveInput {
  /** How messages name the input: the file name, or "standard input". */
  name: string;
  /** Bytes in the input when known (a regular file), for an ETA. */
  size: number | undefined;
  compression: Compression;
  /** The uncompressed tar bytes. */
  chunks: AsyncIterable<Buffer>;
  close(): void;
}

const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const XZ = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
/** "BZh", the block size digit, then the first block's magic (π in BCD). */
const BZIP2 = /^BZh[1-9]\x31\x41\x59\x26\x53\x59/;

type ZstdZlib = typeof zlib & { createZstdDecompress?: () => zlib.Gunzip };

/** Node's zstd decompressor, or undefined where this Node has none. */
export function zstdDecompressor(): (() => NodeJS.ReadWriteStream) | undefined {
  const create = (zlib as ZstdZlib).createZstdDecompress;
  return typeof create === "function" ? () => create() : undefined;
}

/** Opens `file` ("-" for standard input). Throws ArchiveError for a missing file or a directory. */
export async function openArchive(file: string, onBytes?: (n: number) => void): Promise<ArchiveInput> {
  if (file === "-") {
    if (process.stdin.isTTY)
      throw new ArchiveError("refusing to read an archive from a terminal: pipe one in");
    return archiveFromStream("standard input", process.stdin, undefined, onBytes);
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    if (codeOf(err) === "ENOENT") throw new ArchiveError(`layer archive '${file}' does not exist`);
    throw err;
  }
  if (st.isDirectory()) throw new ArchiveError(`layer archive '${file}' is a directory`);
  const size = st.isFile() ? st.size : undefined;
  return archiveFromStream(`'${file}'`, fs.createReadStream(file), size, onBytes);
}

/** The first bytes of `it` (at least `n` unless the input is shorter). */
async function head(it: AsyncIterator<Buffer>, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const r = await it.next();
    if (r.done) break;
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    parts.push(chunk);
    len += chunk.length;
  }
  return Buffer.concat(parts);
}

async function* replay(
  first: Buffer,
  it: AsyncIterator<Buffer>,
  onBytes: (n: number) => void,
): AsyncGenerator<Buffer> {
  if (first.length > 0) {
    onBytes(first.length);
    yield first;
  }
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    onBytes(r.value.length);
    yield r.value;
  }
}

/** Turns a decompressor's errors into one-line ArchiveErrors. */
async function* decompressed(name: string, what: string, out: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* out;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && (code.startsWith("Z_") || code.startsWith("ZSTD_"))) {
      throw new ArchiveError(`${name} is a damaged ${what} stream (${(err as Error).message})`);
    }
    throw err;
  }
}

/** The archive in `raw` (which is consumed), told apart by its first bytes. */
export async function archiveFromStream(
  name: string,
  raw: Readable,
  size: number | undefined,
  onBytes: (n: number) => void = () => undefined,
): Promise<ArchiveInput> {
  const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const closers: Array<{ destroy(): void }> = [raw];
  const close = (): void => closers.forEach((s) => s.destroy());
  let first: Buffer;
  try {
    first = await head(it, 10);
  } catch (err) {
    close();
    throw err;
  }
  const starts = (magic: Buffer): boolean => first.subarray(0, magic.length).equals(magic);
  const plain = replay(first, it, onBytes);
  const refuse = (what: string, tool: string): never => {
    close();
    throw new ArchiveError(
      `${name} is ${what}-compressed, which import does not read: decompress it first (${tool} -dc FILE | unionfs-ts import - DIR)`,
    );
  };
  let compression: Compression = "none";
  let make: (() => NodeJS.ReadWriteStream) | undefined;
  if (starts(GZIP)) {
    compression = "gzip";
    make = () => zlib.createGunzip();
  } else if (starts(ZSTD)) {
    compression = "zstd";
    make = zstdDecompressor();
    if (make === undefined) {
      close();
      throw new ArchiveError(
        `${name} is zstd-compressed, which this Node (${process.version}) cannot read (Node ≥ 22.15 can): ` +
          "decompress it first (zstd -dc FILE | unionfs-ts import - DIR)",
      );
    }
  } else if (starts(XZ)) refuse("xz", "xz");
  else if (BZIP2.test(first.toString("latin1"))) refuse("bzip2", "bzip2");
  if (make === undefined) return { name, size, compression, chunks: plain, close };
  const source = Readable.from(plain);
  const decoder = make() as NodeJS.ReadWriteStream & Readable;
  closers.push(source, decoder);
  source.on("error", (err) => decoder.destroy(err));
  source.pipe(decoder);
  return { name, size, compression, chunks: decompressed(name, compression, decoder), close };
}
