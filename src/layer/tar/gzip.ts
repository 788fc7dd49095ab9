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
/** Rooms of dropped spans kept for reuse. */
const SPARE_ROOMS = 8;

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

/** A span's bytes: `data` is the whole span's room, of which the first `have` bytes are inflated. */
export interface SpanData {
  data: Buffer;
  have: number;
}

/**
 * Inflates spans of a gzip file on demand, as far as asked: a read near a span's start does not pay for
 * its end. One reusable inflater (not re-entrant); it stays where the last call stopped, so asking for
 * more of the same span goes on from there instead of starting over (sequential reads).
 */
export class SpanInflater {
  private z: Inflater | undefined;
  /** The span the inflater is in the middle of, and the file offset of its next input. */
  private cur: { i: number; span: SpanData; fileAt: number } | undefined;

  constructor(
    private readonly fd: number,
    private readonly map: GzipMap,
  ) {}

  /** Span `i` inflated at least to byte `need` (the whole span when `need` is past its end). */
  fill(i: number, need: number, known?: SpanData): SpanData {
    try {
      return this.fillOrThrow(i, need, known);
    } catch (err) {
      this.cur = undefined;
      corrupt(err);
    }
  }

  /** The uncompressed bytes of span `i`, all of them. */
  span(i: number): Buffer {
    return this.fill(i, Infinity).data;
  }

  private fillOrThrow(i: number, need: number, known: SpanData | undefined): SpanData {
    const cp = this.map.checkpoints[i]!;
    const len = (this.map.checkpoints[i + 1]?.out ?? this.map.size) - cp.out;
    let cur = this.cur;
    if (cur === undefined || cur.i !== i || cur.span !== known || known.have >= len) {
      const span = known ?? { data: this.room(len), have: 0 };
      span.have = 0;
      cur = this.cur = { i, span, fileAt: cp.in };
      this.start(i, cp);
    }
    const z = this.z!;
    const { span } = cur;
    const target = Math.min(need, len);
    while (span.have < target) {
      if (z.availIn === 0) {
        const n = preadFully(this.fd, z.input, z.input.length, cur.fileAt);
        if (n === 0) throw new ArchiveError(`truncated gzip data`);
        cur.fileAt += n;
        z.setInput(n);
      }
      // Straight into the span, at most a chunk at a time: a read near the start stops early.
      const { ret, wrote } = z.inflateInto(
        Z_NO_FLUSH,
        span.data,
        span.have,
        Math.min(OUT_SIZE, len - span.have),
      );
      span.have += wrote;
      if (ret === Z_STREAM_END && span.have < len) throw new ArchiveError(`gzip member ended early`);
    }
    return span;
  }

  /** Spans' rooms given back (`recycle`), to be used again instead of allocating. */
  private readonly spare: Buffer[] = [];

  /** A span's room of `len` bytes: unpooled, since inflate writes at its address. */
  private room(len: number): Buffer {
    const i = this.spare.findIndex((b) => b.length >= len && b.length <= 2 * len);
    if (i >= 0) return this.spare.splice(i, 1)[0]!.subarray(0, len);
    return Buffer.allocUnsafeSlow(len);
  }

  /** Takes back the room of a span nobody holds any more (the cache dropped it). */
  recycle(span: SpanData): void {
    if (this.cur?.span === span) this.cur = undefined;
    // The whole allocation (a room may have served a shorter span).
    if (this.spare.length < SPARE_ROOMS) this.spare.push(Buffer.from(span.data.buffer));
  }

  /** The inflater, reset to resume at checkpoint `cp`. */
  private start(i: number, cp: Checkpoint): void {
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
  }

  close(): void {
    this.z?.close();
    this.z = undefined;
    this.cur = undefined;
  }
}
