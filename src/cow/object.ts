/**
 * Copying one object up: a writable copy, in the upper layer, of one object of a lower layer (copyup.ts
 * decides what to copy, and in which order).
 *
 * Invariants:
 * - Atomic: the copy is built complete (data, owner, mode, xattrs, ns times) in the work dir and then
 *   renamed into place, so a crash never leaves a half-copied object visible. With `sync` (the default
 *   of a union, as overlayfs does unless volatile) a copy's data is on disk before the rename publishes
 *   it: a crash cannot publish a file whose data was lost, hiding the lower original.
 * - Lower layers are only read.
 * - Regular files are cloned when the filesystem can (reflink), else their data segments are copied
 *   (holes kept) by copy_file_range, else by read/write; `withData: false` copies metadata only (O_TRUNC).
 * - The caller has already copied up the parent directory.
 */
import * as fs from "node:fs";
import type { Stat } from "../sys/stat";
import { codeOf, fsError, reported } from "../errors";
import type { Layer, LayerFile, Scratch, WritableFile, WritableLayer } from "../layer";
import { toText } from "../sys/bytes";
import { copyData } from "./copydata";
import type { Origins } from "./origin";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export interface ObjectCopyOptions {
  withData: boolean;
  /** Inode number the union reported for the original, recorded on the copy (so it keeps it) in `origins`. */
  origin?: { ino: bigint; origins: Origins };
  /** Extended attribute names never copied (the union's own bookkeeping). */
  skipXattr?: (name: string) => boolean;
  /** A work-dir file already holding the data (background.ts); it is taken over instead of copying. */
  staged?: string;
  /** Flush a regular file's data to disk before it is published (a staged file was flushed already). */
  sync?: boolean;
}

/** The object copied: `rel` of `layer`, whose lstat is `st`. */
interface Source {
  layer: Layer;
  rel: string;
  st: Stat;
}

/** Where a copy is built: `rel` of a writable `layer` (the work dir). */
interface Target {
  layer: WritableLayer;
  rel: string;
}

/** Copies `rel` of `from` (whose lstat is `st`) to `rel` of `upper`, through the work dir `work`. */
export function copyObjectUp(
  from: Layer,
  rel: string,
  st: Stat,
  upper: WritableLayer,
  work: Scratch,
  opts: ObjectCopyOptions,
): void {
  const to: Target = { layer: work.layer, rel: work.temp() };
  try {
    copyObject({ layer: from, rel, st }, to, opts);
    upper.moveFrom(work.layer, to.rel, rel);
  } catch (err) {
    work.layer.removeTree(to.rel);
    throw reported(err, `copy-up of ${toText(rel)} failed`);
  }
}

/**
 * Copies one object (a directory without its entries) to `to`, which must not exist, with all its
 * metadata.
 */
function copyObject(from: Source, to: Target, opts: ObjectCopyOptions): void {
  if (opts.staged !== undefined && opts.withData) to.layer.rename(opts.staged, to.rel);
  else createCopy(from, to, opts.withData, opts.sync === true);
  copyMetadata(from, to, opts);
}

function createCopy(from: Source, to: Target, withData: boolean, sync: boolean): void {
  const type = Number(from.st.mode) & S_IFMT;
  if (type === S_IFREG) {
    const dst = to.layer.create(to.rel, fs.constants.O_WRONLY | fs.constants.O_EXCL, 0o600);
    copyRegular(from, dst, { size: withData ? from.st.size : 0n, sync });
  } else if (type === S_IFDIR) {
    to.layer.mkdir(to.rel, 0o700);
  } else if (type === S_IFLNK) {
    to.layer.symlink(from.layer.readlink(from.rel), to.rel);
  } else {
    to.layer.mknod(to.rel, Number(from.st.mode), Number(from.st.rdev));
  }
}

/** Copies `size` bytes of `from` into `dst` (which this closes). */
function copyRegular(from: Source, dst: WritableFile, how: { size: bigint; sync: boolean }): void {
  try {
    if (how.size === 0n) return;
    const src = from.layer.open(from.rel);
    try {
      copyFileData(src, dst, how.size);
    } finally {
      src.close();
    }
    // A write error the page cache held back surfaces here, before anything is published.
    if (how.sync) dst.sync(true);
  } finally {
    dst.close();
  }
}

/** Copies `size` bytes from `src` to `dst`: by descriptor where `src` has one, else through reads. */
export function copyFileData(src: LayerFile, dst: WritableFile, size: bigint): void {
  if (src.fd !== undefined) return copyData(src.fd, dst.fd, size);
  const CHUNK = 1 << 20;
  for (let pos = 0n; pos < size;) {
    const chunk = src.read(Number(size - pos < BigInt(CHUNK) ? size - pos : BigInt(CHUNK)), pos);
    if (chunk.length === 0) break; // the source shrank under us
    pos += BigInt(dst.write(chunk, pos));
  }
  dst.truncate(size);
}

/** Owner first (chown may clear set-id bits), then mode, xattrs, and the times last. */
function copyMetadata(from: Source, to: Target, opts: ObjectCopyOptions): void {
  const { st } = from;
  const isLink = (Number(st.mode) & S_IFMT) === S_IFLNK;
  to.layer.lchown(to.rel, Number(st.uid), Number(st.gid));
  if (!isLink) to.layer.chmod(to.rel, Number(st.mode) & 0o7777);
  copyXattrs(from, to, opts.skipXattr);
  if (opts.origin !== undefined) opts.origin.origins.write(to.layer, to.rel, opts.origin.ino);
  to.layer.utimens(to.rel, st.atimeNs, st.mtimeNs);
}

function copyXattrs(from: Source, to: Target, skip?: (name: string) => boolean): void {
  for (const name of from.layer.listxattr(from.rel)) {
    if (skip?.(name)) continue;
    try {
      const value = from.layer.getxattr(from.rel, name);
      if (value === undefined) throw fsError("ENODATA", `${from.rel}: ${name}`);
      to.layer.setxattr(to.rel, name, value, 0);
    } catch (err) {
      // A namespace the upper filesystem does not support cannot be kept; everything else is an error.
      if (codeOf(err) !== "EOPNOTSUPP") throw err;
    }
  }
}
