/**
 * Layer blobs as they come (plain tar, gzip, zstd), read as the uncompressed tar stream.
 *
 * Invariants: the compression is told by the blob's first bytes, never by a file name or media type
 * (archives get those wrong); a format Node cannot read here is one UsageError line, never a crash.
 */
import * as fs from "node:fs";
import { pipeline, type Readable } from "node:stream";
import * as zlib from "node:zlib";
import { UsageError } from "../../unionfs/branches";

export type Compression = "none" | "gzip" | "zstd";

const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const XZ = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const BZIP2 = Buffer.from("BZh");

/** The compression of a blob, from its first bytes. */
export function compressionOf(head: Buffer, what: string): Compression {
  if (head.subarray(0, 2).equals(GZIP)) return "gzip";
  if (head.subarray(0, 4).equals(ZSTD)) return "zstd";
  if (head.subarray(0, 6).equals(XZ) || head.subarray(0, 3).equals(BZIP2)) {
    throw new UsageError(`${what} is xz or bzip2 compressed, which layers may not be (OCI: gzip, zstd)`);
  }
  return "none";
}

function readHead(file: string): Buffer {
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(8);
    return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** A stream that decompresses `c` (a pass-through when there is nothing to undo). */
function decompressor(c: Compression, what: string): NodeJS.ReadWriteStream | undefined {
  if (c === "gzip") return zlib.createGunzip();
  if (c !== "zstd") return undefined;
  const zstd = (zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream })
    .createZstdDecompress;
  if (zstd === undefined) {
    throw new UsageError(
      `${what} is zstd-compressed, which needs Node 22.15 or later (this is ${process.version})`,
    );
  }
  return zstd();
}

/** The blob's compression and its uncompressed tar stream. */
export function openLayerBlob(file: string, what: string): { compression: Compression; tar: Readable } {
  const compression = compressionOf(readHead(file), what);
  const raw = fs.createReadStream(file);
  const undo = decompressor(compression, what);
  if (undo === undefined) return { compression, tar: raw };
  // An error of either stream destroys the last one with it, so reading `tar` sees it.
  const tar = pipeline(raw, undo, () => undefined) as unknown as Readable;
  return { compression, tar };
}
