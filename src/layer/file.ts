/**
 * Layer files backed by a real descriptor (every file of a directory layer).
 *
 * Invariants: a `FdFile` owns its descriptor from construction to `close()` (closed once); it reads and
 * writes at explicit positions only, so it never depends on or moves a file offset. `seekFile` answers
 * SEEK_DATA/SEEK_HOLE for any `LayerFile`: through the descriptor where there is one, else as for a file
 * without holes.
 */
import * as fs from "node:fs";
import { fsError } from "../errors";
import * as sys from "../sys/libc";
import type { LayerFile, Stat, WritableFile } from "./types";

export class FdFile implements WritableFile {
  constructor(readonly fd: number) {}

  read(length: number, position: bigint): Buffer {
    const buf = Buffer.allocUnsafe(length);
    const n = fs.readSync(this.fd, buf, 0, length, position);
    return buf.subarray(0, n);
  }

  readInto(buf: Buffer, position: bigint): number {
    return fs.readSync(this.fd, buf, 0, buf.length, position);
  }

  fstat(): Stat {
    return fs.fstatSync(this.fd, { bigint: true });
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  write(data: Buffer, position: bigint): number {
    return fs.writeSync(this.fd, data, 0, data.length, Number(position));
  }

  truncate(size: bigint): void {
    fs.ftruncateSync(this.fd, Number(size));
  }

  sync(datasync: boolean): void {
    if (datasync) fs.fdatasyncSync(this.fd);
    else fs.fsyncSync(this.fd);
  }

  chown(uid: number, gid: number): void {
    fs.fchownSync(this.fd, uid, gid);
  }

  chmod(mode: number): void {
    fs.fchmodSync(this.fd, mode & 0o7777);
  }

  utimens(atime: bigint | "now" | undefined, mtime: bigint | "now" | undefined): void {
    sys.futimens(this.fd, atime, mtime);
  }

  fallocate(mode: number, offset: bigint, length: bigint): void {
    sys.fallocate(this.fd, mode, offset, length);
  }
}

const SEEK_SET = 0;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** lseek(2) of `file`: SEEK_DATA/SEEK_HOLE without a descriptor treat the file as all data. */
export function seekFile(file: LayerFile, offset: bigint, whence: number): bigint {
  if (file.fd !== undefined) return sys.lseek(file.fd, offset, whence);
  const size = file.fstat().size;
  if (whence === SEEK_SET) return offset;
  if ((whence !== SEEK_DATA && whence !== SEEK_HOLE) || offset < 0n) throw fsError("EINVAL", "lseek");
  if (offset >= size) throw fsError("ENXIO", "lseek past the end");
  return whence === SEEK_DATA ? offset : size;
}
