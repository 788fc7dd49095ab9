/**
 * Random access into a gzip stream, as zran.c and indexed_gzip do: while the archive is scanned once,
 * a checkpoint is recorded at the first deflate block boundary after every SPAN bytes of output (the
 * bit position there and the 32 KiB window before it) and at the start of every gzip member
 * (concatenated members, as pigz --independent or bgzip write, need no window). Reading any offset then
 * inflates from the checkpoint before it: at most about SPAN bytes before the first byte wanted.
 *
 * Invariants:
 * - Checkpoints are sorted by `out` (uncompressed offset) and the first is member 0 at offset 0; span i
 *   is [cp[i].out, cp[i+1].out) (the last one ends at `size`), and lies in one gzip member.
 * - `in` is the file offset of the first whole byte to feed; `bits` (0–7) bits of the byte before it
 *   come first (inflatePrime), then the window (inflateSetDictionary). A member checkpoint has no window
 *   and is inflated with its gzip header.
 * - The scan checks every member's CRC and length (zlib does, in gzip mode): a corrupt stream throws.
 *   Bytes after the last member that are not another member are ignored, as gzip does.
 */
import {
  DT_BITS,
  DT_BOUNDARY,
  DT_LAST,
  GZIP_WBITS,
  Inflater,
  RAW_WBITS,
  Z_BLOCK,
  Z_NO_FLUSH,
  Z_STREAM_END,
  ZlibError,
} from "../../sys/zlib";
import { ArchiveError } from "./header";
import { ChunkStream, preadFully } from "./stream";

export const SPAN = 1024 * 1024;
const IN_SIZE = 256 * 1024;
const OUT_SIZE = 256 * 1024;

export interface Checkpoint {
  out: number;
  in: number;
  bits: number;
  /** A gzip member starts at `in`: inflated with its header, no window. */
  member: boolean;
}

/** The gzip magic at `buf[at]`. */
export function isGzip(buf: Buffer, at = 0): boolean {
  return buf[at] === 0x1f && buf[at + 1] === 0x8b;
}

/** zlib's failure as the one-line refusal of a corrupt archive. */
function corrupt(err: unknown): never {
  if (err instanceof ZlibError) throw new ArchiveError(`corrupt gzip data: ${err.message}`);
  throw err;
}

/** The decompressed stream of a gzip file, recording checkpoints as it goes (see the module). */
export class GzipScanner extends ChunkStream {
  readonly checkpoints: Checkpoint[] = [{ out: 0, in: 0, bits: 0, member: true }];
  /** The window of each checkpoint (undefined for members). */
  readonly windows: (Buffer | undefined)[] = [undefined];
  private readonly z = new Inflater(GZIP_WBITS, IN_SIZE, OUT_SIZE);
  /** File offset of `z.input[0]`, and of the next byte to read into it. */
  private inBase = 0;
  private fileAt = 0;
  /** Uncompressed offset where the current member starts. */
  private memberOut = 0;
  private lastOut = 0;
  private done = false;

  constructor(private readonly fd: number) {
    super();
  }

  /** Total uncompressed size, once the stream has been read to its end. */
  get size(): number {
    return this.memberOut + (this.done ? 0 : this.z.totalOut);
  }

  close(): void {
    this.z.close();
  }

  /** Refills the input buffer; false at the end of the file. */
  private refill(): boolean {
    const n = preadFully(this.fd, this.z.input, this.z.input.length, this.fileAt);
    this.inBase = this.fileAt;
    this.fileAt += n;
    this.z.setInput(n);
    return n > 0;
  }

  protected fill(): Buffer | undefined {
    while (!this.done) {
      if (this.z.availIn === 0 && !this.refill()) {
        throw new ArchiveError(`truncated gzip data`);
      }
      this.z.resetOutput();
      const out = this.memberOut + this.z.totalOut;
      const flush = out - this.lastOut >= SPAN ? Z_BLOCK : Z_NO_FLUSH;
      let ret: number;
      try {
        ret = this.z.inflate(flush);
      } catch (err) {
        corrupt(err);
      }
      const produced = this.z.produced;
      if (flush === Z_BLOCK) this.boundary();
      if (ret === Z_STREAM_END) this.memberEnd();
      if (produced > 0) return this.z.output.subarray(0, produced);
    }
    return undefined;
  }

  /** Records a checkpoint when inflate stopped at a block boundary that is not the member's end. */
  private boundary(): void {
    const dt = this.z.dataType;
    if (!(dt & DT_BOUNDARY) || dt & DT_LAST) return;
    const out = this.memberOut + this.z.totalOut;
    if (out - this.lastOut < SPAN) return;
    this.checkpoints.push({ out, in: this.inBase + this.z.inOffset, bits: dt & DT_BITS, member: false });
    this.windows.push(this.z.window());
    this.lastOut = out;
  }

  /** After a member's trailer: another member follows (a checkpoint of its own), or the stream ends. */
  private memberEnd(): void {
    this.memberOut += this.z.totalOut;
    const start = this.inBase + this.z.inOffset;
    const head = Buffer.alloc(2);
    if (preadFully(this.fd, head, 2, start) < 2 || !isGzip(head)) {
      this.done = true;
      return;
    }
    this.z.reset(GZIP_WBITS);
    // A checkpoint at the same offset (an empty member, a boundary at the very end) spans nothing: replaced.
    if (this.checkpoints[this.checkpoints.length - 1]!.out === this.memberOut) {
      this.checkpoints.pop();
      this.windows.pop();
    }
    this.checkpoints.push({ out: this.memberOut, in: start, bits: 0, member: true });
    this.windows.push(undefined);
    this.lastOut = this.memberOut;
  }
}

/** Where a span's bytes come from: the checkpoints, and the window of checkpoint i (not a member). */
export interface GzipMap {
  readonly checkpoints: readonly Checkpoint[];
  readonly size: number;
  window(i: number): Buffer;
}

/** The index of the span that holds uncompressed offset `pos` (binary search). */
export function spanOf(cps: readonly Checkpoint[], pos: number): number {
  let lo = 0;
  let hi = cps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cps[mid]!.out <= pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Inflates whole spans of a gzip file on demand (one reusable inflater; not re-entrant). */
export class SpanInflater {
  private z: Inflater | undefined;

  constructor(
    private readonly fd: number,
    private readonly map: GzipMap,
  ) {}

  /** The uncompressed bytes of span `i`. */
  span(i: number): Buffer {
    const cp = this.map.checkpoints[i]!;
    const end = this.map.checkpoints[i + 1]?.out ?? this.map.size;
    const out = Buffer.allocUnsafe(end - cp.out);
    try {
      this.inflate(i, cp, out);
    } catch (err) {
      corrupt(err);
    }
    return out;
  }

  private inflate(i: number, cp: Checkpoint, out: Buffer): void {
    const z = this.start(i, cp);
    let got = 0;
    let fileAt = cp.in;
    while (got < out.length) {
      if (z.availIn === 0) {
        const n = preadFully(this.fd, z.input, z.input.length, fileAt);
        if (n === 0) throw new ArchiveError(`truncated gzip data`);
        fileAt += n;
        z.setInput(n);
      }
      z.resetOutput();
      const ret = z.inflate(Z_NO_FLUSH);
      const k = Math.min(z.produced, out.length - got);
      z.output.copy(out, got, 0, k);
      got += k;
      if (ret === Z_STREAM_END && got < out.length) {
        throw new ArchiveError(`gzip member ended early`);
      }
    }
  }

  /** The inflater, reset to resume at checkpoint `cp`. */
  private start(i: number, cp: Checkpoint): Inflater {
    const wbits = cp.member ? GZIP_WBITS : RAW_WBITS;
    if (this.z === undefined) this.z = new Inflater(wbits, IN_SIZE, OUT_SIZE);
    else this.z.reset(wbits);
    const z = this.z;
    z.setInput(0);
    if (cp.bits > 0) {
      const byte = Buffer.alloc(1);
      preadFully(this.fd, byte, 1, cp.in - 1);
      z.prime(cp.bits, (byte[0] as number) >> (8 - cp.bits));
    }
    if (!cp.member) z.setDictionary(this.map.window(i));
    return z;
  }

  close(): void {
    this.z?.close();
    this.z = undefined;
  }
}
