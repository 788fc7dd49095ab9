/**
 * Copying a regular file's bytes: reflink, else the data segments only (holes stay holes) with
 * copy_file_range, else read/write.
 *
 * Invariants: the destination ends with exactly the source's size and bytes; a hole in the source is
 * never turned into allocated zeros when the filesystems let us see it (SEEK_DATA/SEEK_HOLE).
 */
import * as fs from "node:fs";
import { codeOf } from "../errors";
import * as sys from "../sys/libc";

const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const CHUNK = 8 << 20;
/** Errors that mean "this method is not available here": fall back to the next one. */
const UNSUPPORTED = new Set(["EOPNOTSUPP", "ENOTSUP", "EXDEV", "EINVAL", "ENOSYS", "ENOTTY", "EBADF"]);

export function copyData(srcFd: number, dstFd: number, size: bigint): void {
  if (size === 0n) return;
  if (attempt(() => sys.ficlone(dstFd, srcFd))) return;
  for (const [start, end] of dataSegments(srcFd, size)) copySegment(srcFd, dstFd, start, end);
  fs.ftruncateSync(dstFd, Number(size));
}

function attempt(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (UNSUPPORTED.has(codeOf(err) ?? "")) return false;
    throw err;
  }
}

/** [start, end) ranges holding data; the whole file when holes cannot be found. */
function dataSegments(fd: number, size: bigint): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  let pos = 0n;
  while (pos < size) {
    let start: bigint;
    try {
      start = sys.lseek(fd, pos, SEEK_DATA);
    } catch (err) {
      if (codeOf(err) === "ENXIO") break; // only a hole is left
      return [[0n, size]];
    }
    const end = sys.lseek(fd, start, SEEK_HOLE);
    out.push([start, end < size ? end : size]);
    pos = end;
  }
  return out;
}

function copySegment(src: number, dst: number, start: bigint, end: bigint): void {
  let pos = start;
  while (pos < end) {
    const want = Number(end - pos < BigInt(CHUNK) ? end - pos : BigInt(CHUNK));
    let n = 0;
    if (!attempt(() => (n = sys.copyFileRange(src, pos, dst, pos, want)))) n = readWrite(src, dst, pos, want);
    if (n === 0) return; // the source shrank under us
    pos += BigInt(n);
  }
}

function readWrite(src: number, dst: number, pos: bigint, want: number): number {
  const buf = Buffer.allocUnsafe(Math.min(want, 1 << 20));
  const n = fs.readSync(src, buf, 0, buf.length, pos);
  if (n > 0) fs.writeSync(dst, buf, 0, n, Number(pos));
  return n;
}
