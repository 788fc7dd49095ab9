/**
 * zlib's inflate from the system's libz, over koffi: what Node's zlib does not expose and random access
 * into a gzip stream needs (as zran.c and indexed_gzip do) — stopping at deflate block boundaries
 * (Z_BLOCK), the bit position there (`data_type`), the window there (`inflateGetDictionary`), and
 * resuming mid-stream (`inflatePrime`, `inflateSetDictionary`).
 *
 * Invariants:
 * - An `Inflater`'s z_stream and its input and output buffers are unpooled Buffers, at fixed addresses for
 *   its whole life (zlib keeps a pointer to its z_stream; the stream holds pointers into the others), and
 *   the inflater holds them until it is collected. `close()` frees zlib's state; it is not used after.
 * - The z_stream layout is LP64's (every 64-bit Linux); zlib checks its size at init (Z_VERSION_ERROR).
 * - libz is loaded on first use, and this is the only module that loads it: a machine without it fails
 *   there, with one line, and only for gzip.
 */
import type { LibraryHandle } from "koffi";
import { koffi } from "./native";

export const Z_NO_FLUSH = 0;
export const Z_BLOCK = 5;
export const Z_OK = 0;
export const Z_STREAM_END = 1;
export const Z_NEED_DICT = 2;
export const Z_BUF_ERROR = -5;

/** `data_type` bits after inflate: unused bits of the last byte read, last block seen, at a block boundary. */
export const DT_BITS = 7;
export const DT_LAST = 64;
export const DT_BOUNDARY = 128;

/** Window bits: a gzip wrapper (header, CRC checked), or raw deflate (a resume mid-stream). */
export const GZIP_WBITS = 31;
export const RAW_WBITS = -15;
export const WINDOW_SIZE = 32768;

const Z_STREAM_SIZE = 112;
const NEXT_IN = 0;
const AVAIL_IN = 8;
const TOTAL_IN = 16;
const NEXT_OUT = 24;
const AVAIL_OUT = 32;
const TOTAL_OUT = 40;
const MSG = 48;
const DATA_TYPE = 88;

interface Libz {
  version: string;
  init2: (strm: unknown, wbits: number, version: string, size: number) => number;
  reset2: (strm: unknown, wbits: number) => number;
  inflate: (strm: unknown, flush: number) => number;
  end: (strm: unknown) => number;
  prime: (strm: unknown, bits: number, value: number) => number;
  setDictionary: (strm: unknown, dict: Buffer, len: number) => number;
  getDictionary: (strm: unknown, dict: Buffer, len: number[]) => number;
}

let libz: Libz | undefined;

function load(): Libz {
  if (libz !== undefined) return libz;
  if (process.arch !== "x64" && process.arch !== "arm64") {
    throw new Error(`gzip random access needs a 64-bit machine (this is ${process.arch})`);
  }
  let lib: LibraryHandle;
  try {
    lib = koffi().load("libz.so.1", { deep: true });
  } catch {
    throw new Error("gzip needs the system's zlib (libz.so.1): apt-get install zlib1g");
  }
  const version = lib.func("const char *zlibVersion()")() as string;
  libz = {
    version,
    init2: lib.func("int inflateInit2_(void *strm, int windowBits, const char *version, int size)"),
    reset2: lib.func("int inflateReset2(void *strm, int windowBits)"),
    inflate: lib.func("int inflate(void *strm, int flush)"),
    end: lib.func("int inflateEnd(void *strm)"),
    prime: lib.func("int inflatePrime(void *strm, int bits, int value)"),
    setDictionary: lib.func("int inflateSetDictionary(void *strm, const void *dict, unsigned int len)"),
    getDictionary: lib.func("int inflateGetDictionary(void *strm, void *dict, _Inout_ unsigned int *len)"),
  };
  return libz;
}

/** A zlib return code other than Z_OK, Z_STREAM_END or a Z_BUF_ERROR (no progress possible). */
export class ZlibError extends Error {
  constructor(
    readonly ret: number,
    message: string,
  ) {
    super(message);
    this.name = "ZlibError";
  }
}

/** Memory at a fixed address: an unpooled Buffer (V8 never moves an ArrayBuffer's backing store). */
interface Native {
  view: Buffer;
  address: bigint;
}

function allocate(size: number): Native {
  const view = Buffer.allocUnsafeSlow(size);
  return { view, address: koffi().address(view) };
}

/** One inflate stream with native input and output buffers (see the module's invariants). */
export class Inflater {
  private readonly z: Libz;
  private readonly strm: Native;
  private readonly in: Native;
  private readonly out: Native;
  private open = true;

  constructor(wbits: number, inSize: number, outSize: number) {
    this.z = load();
    this.strm = allocate(Z_STREAM_SIZE);
    this.strm.view.fill(0);
    this.in = allocate(inSize);
    this.out = allocate(outSize);
    this.check(this.z.init2(this.strm.view, wbits, this.z.version, Z_STREAM_SIZE), "inflateInit2");
    this.resetOutput();
  }

  /** Where the caller puts the next input before `setInput`. */
  get input(): Buffer {
    return this.in.view;
  }

  /** Where inflate writes; `output.subarray(0, produced)` is what it wrote since `resetOutput`. */
  get output(): Buffer {
    return this.out.view;
  }

  /** The next input is `input[from, from + len)`. */
  setInput(len: number, from = 0): void {
    this.strm.view.writeBigUInt64LE(this.in.address + BigInt(from), NEXT_IN);
    this.strm.view.writeUInt32LE(len, AVAIL_IN);
  }

  /** Input bytes not consumed yet. */
  get availIn(): number {
    return this.strm.view.readUInt32LE(AVAIL_IN);
  }

  /** Offset in `input` of the next byte inflate will read. */
  get inOffset(): number {
    return Number(this.strm.view.readBigUInt64LE(NEXT_IN) - this.in.address);
  }

  /** Output space left since `resetOutput`. */
  get availOut(): number {
    return this.strm.view.readUInt32LE(AVAIL_OUT);
  }

  /** Bytes written to `output` since `resetOutput`. */
  get produced(): number {
    return Number(this.strm.view.readBigUInt64LE(NEXT_OUT) - this.out.address);
  }

  /**
   * inflate(3) straight into `out[at, at + len)` instead of `output` (no copy), which must be an unpooled
   * Buffer (`Buffer.allocUnsafeSlow`): it is written at its address. Returns inflate's code and how many
   * bytes it wrote there; `resetOutput` goes back to `output`.
   */
  inflateInto(flush: number, out: Buffer, at: number, len: number): { ret: number; wrote: number } {
    this.strm.view.writeBigUInt64LE(koffi().address(out) + BigInt(at), NEXT_OUT);
    this.strm.view.writeUInt32LE(len, AVAIL_OUT);
    const ret = this.inflate(flush);
    return { ret, wrote: len - this.availOut };
  }

  resetOutput(): void {
    this.strm.view.writeBigUInt64LE(this.out.address, NEXT_OUT);
    this.strm.view.writeUInt32LE(this.out.view.length, AVAIL_OUT);
  }

  get totalIn(): number {
    return Number(this.strm.view.readBigUInt64LE(TOTAL_IN));
  }

  get totalOut(): number {
    return Number(this.strm.view.readBigUInt64LE(TOTAL_OUT));
  }

  get dataType(): number {
    return this.strm.view.readInt32LE(DATA_TYPE);
  }

  /**
   * inflate(3): Z_OK, Z_STREAM_END, or Z_BUF_ERROR when no progress was possible (input or output
   * exhausted); any other outcome throws a ZlibError with zlib's message.
   */
  inflate(flush: number): number {
    const ret = this.z.inflate(this.strm.view, flush);
    if (ret === Z_OK || ret === Z_STREAM_END || ret === Z_BUF_ERROR) return ret;
    throw new ZlibError(ret, this.message(ret));
  }

  /** Starts a new stream (next gzip member, or a raw resume) keeping the buffers. */
  reset(wbits: number): void {
    this.check(this.z.reset2(this.strm.view, wbits), "inflateReset2");
  }

  /** Feeds the low `bits` bits of `value` ahead of the input (a resume at a bit position). */
  prime(bits: number, value: number): void {
    this.check(this.z.prime(this.strm.view, bits, value), "inflatePrime");
  }

  setDictionary(window: Buffer): void {
    this.check(this.z.setDictionary(this.strm.view, window, window.length), "inflateSetDictionary");
  }

  /** A copy of the sliding window: the last (up to 32 KiB) bytes of output. */
  window(): Buffer {
    const buf = Buffer.allocUnsafe(WINDOW_SIZE);
    const len = [WINDOW_SIZE];
    this.check(this.z.getDictionary(this.strm.view, buf, len), "inflateGetDictionary");
    return buf.subarray(0, len[0]);
  }

  close(): void {
    if (!this.open) return;
    this.open = false;
    this.z.end(this.strm.view);
  }

  private message(ret: number): string {
    const msg =
      this.strm.view.readBigUInt64LE(MSG) === 0n ? null : koffi().decode(this.strm.view, MSG, "const char *");
    return typeof msg === "string" ? msg : `zlib error ${ret}`;
  }

  private check(ret: number, call: string): void {
    if (ret !== Z_OK) throw new ZlibError(ret, `${call}: ${this.message(ret)}`);
  }
}
