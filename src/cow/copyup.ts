/**
 * Copy-up: make a writable copy in the upper layer of an object that lives in a lower layer.
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
import { codeOf, reported } from "../errors";
import type { Layer } from "../layer";
import { bytesOf, toText } from "../sys/bytes";
import * as sys from "../sys/libc";
import type { WorkDir } from "./workdir";
import { copyData } from "./copydata";
import type { Origins } from "./origin";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

export interface CopyUpOptions {
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

/** Copies `rel` of `from` (whose lstat is `st`) to `rel` of `upper`, through `work`. */
export function copyUp(
  from: Layer,
  rel: string,
  st: Stat,
  upper: Layer,
  work: WorkDir,
  opts: CopyUpOptions,
): void {
  const tmp = work.tempPath();
  try {
    copyObject(from, rel, st, tmp, opts);
    upper.withPath(rel, (target) => fs.renameSync(bytesOf(tmp), bytesOf(target)));
  } catch (err) {
    fs.rmSync(bytesOf(tmp), { recursive: true, force: true });
    throw reported(err, `copy-up of ${toText(rel)} failed`);
  }
}

/**
 * Copies one object (a directory without its entries) to the absolute byte-string path `dest`, which
 * must not exist, with all its metadata. Directory times should be set again with `copyTimes` once
 * entries have been added to it.
 */
export function copyObject(from: Layer, rel: string, st: Stat, dest: string, opts: CopyUpOptions): void {
  if (opts.staged !== undefined && opts.withData) fs.renameSync(bytesOf(opts.staged), bytesOf(dest));
  else createCopy(from, rel, st, dest, opts.withData, opts.sync === true);
  copyMetadata(from, rel, st, dest, opts);
}

/** Sets `dest`'s atime and mtime to those of `st` (after filling a copied directory). */
export function copyTimes(st: Stat, dest: string): void {
  sys.utimens(dest, st.atimeNs, st.mtimeNs);
}

function createCopy(from: Layer, rel: string, st: Stat, tmp: string, withData: boolean, sync: boolean): void {
  const type = Number(st.mode) & S_IFMT;
  if (type === S_IFREG) {
    copyRegular(from, rel, tmp, withData ? st.size : 0n, sync);
  } else if (type === S_IFDIR) {
    fs.mkdirSync(bytesOf(tmp), { mode: 0o700 });
  } else if (type === S_IFLNK) {
    fs.symlinkSync(bytesOf(from.readlink(rel)), bytesOf(tmp));
  } else {
    sys.mknod(tmp, Number(st.mode), Number(st.rdev));
  }
}

function copyRegular(from: Layer, rel: string, tmp: string, size: bigint, sync: boolean): void {
  const dst = fs.openSync(bytesOf(tmp), "wx", 0o600);
  try {
    if (size === 0n) return;
    const src = from.open(rel, fs.constants.O_RDONLY | fs.constants.O_NOATIME);
    try {
      copyData(src, dst, size);
    } finally {
      fs.closeSync(src);
    }
    // A write error the page cache held back surfaces here, before anything is published.
    if (sync) fs.fdatasyncSync(dst);
  } finally {
    fs.closeSync(dst);
  }
}

/** Owner first (chown may clear set-id bits), then mode, xattrs, and the times last. */
function copyMetadata(from: Layer, rel: string, st: Stat, tmp: string, opts: CopyUpOptions): void {
  const isLink = (Number(st.mode) & S_IFMT) === S_IFLNK;
  fs.lchownSync(bytesOf(tmp), Number(st.uid), Number(st.gid));
  if (!isLink) fs.chmodSync(bytesOf(tmp), Number(st.mode) & 0o7777);
  from.withPath(rel, (src) => copyXattrs(src, tmp, opts.skipXattr));
  if (opts.origin !== undefined) opts.origin.origins.write(tmp, opts.origin.ino);
  sys.utimens(tmp, st.atimeNs, st.mtimeNs);
}

function copyXattrs(src: string, dst: string, skip?: (name: string) => boolean): void {
  for (const name of sys.llistxattr(src)) {
    if (skip?.(name)) continue;
    try {
      sys.lsetxattr(dst, name, sys.lgetxattr(src, name), 0);
    } catch (err) {
      // A namespace the upper filesystem does not support cannot be kept; everything else is an error.
      if (codeOf(err) !== "EOPNOTSUPP") throw err;
    }
  }
}
