/**
 * The uncompressed bytes of an archive, read once from the start by the scanner: from a plain file
 * (skipping data is a seek) or from chunks a decompressor produces (skipping data still inflates it).
 *
 * Invariants: `position` is the offset in the uncompressed stream of the next byte `read` returns;
 * `read` and `skip` return less than asked only at the end of the stream; a buffer `read` returns is
 * valid until the next call.
 */
import * as fs from "node:fs";

export interface TarStream {
  readonly position: number;
  read(n: number): Buffer;
  /** Skips `n` bytes; returns how many there were. */
  skip(n: number): number;
}

const READAHEAD = 64 * 1024;

/** pread(2) until `len` bytes are in `buf` or the file ends; returns how many were read. */
export function preadFully(fd: number, buf: Buffer, len: number, position: number): number {
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** A plain (uncompressed) archive of `size` bytes, read through `fd`. */
export class FileStream implements TarStream {
  position = 0;
  private buf = Buffer.allocUnsafe(READAHEAD);
  private bufStart = 0;
  private bufLen = 0;

  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {}

  read(n: number): Buffer {
    const len = Math.max(0, Math.min(n, this.size - this.position));
    const from = this.position - this.bufStart;
    if (from < 0 || from + len > this.bufLen) {
      if (len > this.buf.length) this.buf = Buffer.allocUnsafe(len);
      this.bufStart = this.position;
      this.bufLen = preadFully(this.fd, this.buf, Math.max(len, READAHEAD), this.position);
    }
    const at = this.position - this.bufStart;
    const got = Math.min(len, this.bufLen - at);
    this.position += got;
    return this.buf.subarray(at, at + got);
  }

  skip(n: number): number {
    const k = Math.max(0, Math.min(n, this.size - this.position));
    this.position += k;
    return k;
  }
}

/**
 * A stream over chunks that `fill` produces one at a time (a decompressor's output): `read` copies
 * only when a request spans chunks.
 */
export abstract class ChunkStream implements TarStream {
  position = 0;
  private chunk: Buffer = Buffer.alloc(0);
  private at = 0;
  private joined = Buffer.allocUnsafe(READAHEAD);

  /** The next chunk of output (valid until the next call), or undefined at the end of the stream. */
  protected abstract fill(): Buffer | undefined;

  private available(): boolean {
    while (this.at >= this.chunk.length) {
      const next = this.fill();
      if (next === undefined) return false;
      this.chunk = next;
      this.at = 0;
    }
    return true;
  }

  read(n: number): Buffer {
    if (!this.available()) return this.chunk.subarray(0, 0);
    if (this.at + n <= this.chunk.length) {
      const out = this.chunk.subarray(this.at, this.at + n);
      this.at += n;
      this.position += n;
      return out;
    }
    if (this.joined.length < n) this.joined = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n && this.available()) {
      const k = Math.min(n - got, this.chunk.length - this.at);
      this.chunk.copy(this.joined, got, this.at, this.at + k);
      this.at += k;
      got += k;
    }
    this.position += got;
    return this.joined.subarray(0, got);
  }

  skip(n: number): number {
    let got = 0;
    while (got < n && this.available()) {
      const k = Math.min(n - got, this.chunk.length - this.at);
      this.at += k;
      got += k;
    }
    this.position += got;
    return got;
  }
}
