/**
 * READ replies spliced from the file to the device: the data is copied once (the file's page cache into
 * the FUSE page), where a read into a buffer and a write of it copy it twice. fuse-overlayfs gets the
 * same from libfuse; about a third of the daemon CPU of a large read.
 *
 * How: `fill` splices the file's bytes into pipe A (in the READ handler, so a read error is the
 * request's errno); `send` writes the reply header into pipe B, moves A's pages behind it (no copy) and
 * splices B into /dev/fuse, which takes one whole reply per write.
 *
 * Invariants: owned by the session's serving thread (one Session, one thread); between a `fill` and
 * its `send` no other request is served, so the pipes hold one reply at most; any failure after bytes
 * entered a pipe closes both pipes (new ones are made on the next use), so no stale byte is ever sent.
 * A reply bigger than the pipes can hold is not spliced (`fill` answers undefined: read it as before).
 */
import * as fs from "node:fs";
import { codeOf } from "../../errors";
import { closeFd, sizedPipe, splice } from "../../sys/libc";
import { outHeader } from "./codec";

/** Smaller reads are copied: below this, the extra system calls cost more than the copy they save. */
export const SPLICE_MIN_BYTES = 64 * 1024;
const PIPE_BYTES = 2 * 1024 * 1024;
const PAGE = 4096;

export type SendResult = "ok" | "refused" | "gone";

interface Pipes {
  a: [number, number];
  b: [number, number];
  /** Pipe buffers in B: a reply takes one per page of data it touches, plus one for its header. */
  slots: number;
}

export class SpliceReplies {
  private pipes: Pipes | undefined;
  /** Data bytes waiting in pipe A for `send`. */
  private pending = 0;
  /** Set once making pipes failed: this thread then never splices. */
  private unavailable = false;

  /**
   * Splices up to `size` bytes of `fd` at `offset` into pipe A; the count (short at the end of the
   * file), or undefined when this read is not spliced (too big for the pipes, or the file cannot be
   * spliced): nothing entered a pipe then. Throws the file's errno error.
   */
  fill(fd: number, offset: bigint, size: number): number | undefined {
    if (this.pending > 0) this.discard(); // a reply that was never sent (cannot happen: belt and braces)
    const p = this.ready();
    if (p === undefined || pagesOf(offset, size) + 1 > p.slots) return undefined;
    let n = 0;
    try {
      while (n < size) {
        const got = splice(fd, offset + BigInt(n), p.a[1], size - n);
        if (got === 0) break;
        n += got;
      }
    } catch (err) {
      if (n > 0) this.reset();
      else if (cannotSplice(err)) return undefined;
      throw err;
    }
    this.pending = n;
    return n;
  }

  /** Writes the reply to `unique` whose data `fill` left in pipe A. */
  send(dev: number, unique: bigint): SendResult {
    const p = this.pipes;
    const n = this.pending;
    this.pending = 0;
    if (p === undefined) return "refused";
    try {
      writeAll(p.b[1], outHeader(16 + n, 0, unique));
      for (let moved = 0; moved < n;) moved += splice(p.a[0], null, p.b[1], n - moved);
      spliceToDevice(p.b[0], dev, 16 + n);
      return "ok";
    } catch (err) {
      this.reset();
      const code = codeOf(err);
      return code === "ENODEV" ? "gone" : "refused";
    }
  }

  /** Drops what `fill` left when its reply is not sent (the request failed after all). */
  discard(): void {
    if (this.pending > 0) this.reset();
    this.pending = 0;
  }

  close(): void {
    this.reset();
    this.unavailable = true;
  }

  private ready(): Pipes | undefined {
    if (this.pipes !== undefined || this.unavailable) return this.pipes;
    const made: number[] = [];
    try {
      const [ar, aw] = sizedPipe(PIPE_BYTES);
      made.push(ar, aw);
      const [br, bw, capacity] = sizedPipe(PIPE_BYTES);
      made.push(br, bw);
      this.pipes = { a: [ar, aw], b: [br, bw], slots: Math.floor(capacity / PAGE) };
    } catch {
      made.forEach(closeFd);
      this.unavailable = true;
    }
    return this.pipes;
  }

  private reset(): void {
    const p = this.pipes;
    this.pipes = undefined;
    if (p !== undefined) [...p.a, ...p.b].forEach(closeFd);
  }
}

/** Pages of a file that bytes [offset, offset + size) touch. */
export function pagesOf(offset: bigint, size: number): number {
  return Math.ceil((Number(offset % BigInt(PAGE)) + size) / PAGE);
}

/** A file system or file that splice(2) refuses: read it the ordinary way. */
function cannotSplice(err: unknown): boolean {
  const code = codeOf(err);
  return code === "EINVAL" || code === "ENOSYS" || code === "EOPNOTSUPP" || code === "ESPIPE";
}

function writeAll(fd: number, buf: Buffer): void {
  // A 16-byte write into an empty pipe is atomic and never short.
  if (fs.writeSync(fd, buf) !== buf.length) throw new Error("short pipe write");
}

/** The device takes a whole reply in one splice; EINTR (nothing taken) is retried. */
function spliceToDevice(from: number, dev: number, len: number): void {
  for (;;) {
    try {
      if (splice(from, null, dev, len) !== len) throw new Error("short splice to the device");
      return;
    } catch (err) {
      if (codeOf(err) !== "EINTR") throw err;
    }
  }
}
