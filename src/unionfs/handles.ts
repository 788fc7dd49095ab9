/**
 * Open file and directory handles: small integers owned by the core.
 *
 * Invariants: a file handle owns its open layer file until `release`, and the files it followed away
 * from (`retired`: a copy-up replaced its file), which another thread may still be reading through a
 * descriptor it was handed (`UnionOps.readFd`); a directory handle owns a snapshot of
 * the merged listing, taken at its first `readdir` (not at `opendir`: a kernel that has the listing
 * cached opens and releases the directory without reading it), so offsets into it stay valid however
 * the directory changes afterwards.
 */
import { fsError } from "../errors";
import type { LayerFile, WritableFile } from "../layer";
import type { DirEntry } from "./types";

export interface OpenFile {
  /** What is read (and, for the writable layer's files, written). */
  file: LayerFile;
  /** `file` when it is the writable layer's (the only files ever written). */
  upper: WritableFile | undefined;
  /** Union path at open time (informational; the file is what is read and written). */
  path: string;
  /** Layer the file was opened in. */
  layer: number;
  flags: number;
  /** The union's copy-up epoch when the file was last (re)opened. */
  epoch: number;
  /** Files this handle read before it followed a copy-up: closed at release, not before. */
  retired?: LayerFile[];
}

export class Handles {
  private readonly files = new Map<number, OpenFile>();
  private readonly dirs = new Map<number, readonly DirEntry[] | (() => readonly DirEntry[])>();
  private next = 1;

  addFile(f: OpenFile): number {
    const fh = this.next++;
    this.files.set(fh, f);
    return fh;
  }

  file(fh: number): OpenFile {
    const f = this.files.get(fh);
    if (!f) throw fsError("EBADF", `no open file ${fh}`);
    return f;
  }

  maybeFile(fh: number | undefined): OpenFile | undefined {
    return fh === undefined ? undefined : this.files.get(fh);
  }

  releaseFile(fh: number): void {
    const f = this.files.get(fh);
    if (!f) return;
    this.files.delete(fh);
    f.file.close();
    for (const old of f.retired ?? []) old.close();
  }

  /** A directory handle whose listing `list()` makes on first use. */
  addDir(list: () => readonly DirEntry[]): number {
    const dh = this.next++;
    this.dirs.set(dh, list);
    return dh;
  }

  dir(dh: number): readonly DirEntry[] {
    const d = this.dirs.get(dh);
    if (!d) throw fsError("EBADF", `no open directory ${dh}`);
    if (typeof d !== "function") return d;
    const entries = d();
    this.dirs.set(dh, entries);
    return entries;
  }

  releaseDir(dh: number): void {
    this.dirs.delete(dh);
  }

  closeAll(): void {
    for (const fh of [...this.files.keys()]) this.releaseFile(fh);
    this.dirs.clear();
  }
}
