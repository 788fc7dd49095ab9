/**
 * Copy-up (as overlayfs's ovl_copy_up): the one way an object of a lower layer comes to live in the
 * writable layer. `copyUp` is the entry point; the union asks it before changing anything that may live
 * below.
 *
 * Invariants:
 * - Parents first: a directory's copy exists before anything is copied into it; a directory is copied
 *   empty and keeps merging with its lower parts, unless it is materialized whole (materialize.ts).
 * - Each object is copied through the work dir and published by one rename (object.ts), so the lower
 *   layers stay byte-for-byte unchanged and nothing half-copied is ever visible.
 * - A copy records the inode number the union reported for the original (its origin), so it keeps it.
 * - Everything copy-up changes behind the callers' backs is recorded: the epoch (an open file of a lower
 *   object may have a newer copy to follow) and the directories whose attributes changed (they got an
 *   entry, or were materialized), by union path, which the caller drains with `takeChanged` (a
 *   transport drops the kernel's cached attributes of them).
 * - Big files may have their data copied beforehand in a background thread (`stage`): the copy-up that
 *   follows takes the staged data over.
 */
import * as fs from "node:fs";
import { fsError } from "../errors";
import { relOf, splitPath, type Layer, type WritableLayer } from "../layer";
import type { WhiteoutWriter } from "../whiteout";
import { BackgroundCopier, type CopyProgress } from "./background";
import { materialize, type TreeCopier } from "./materialize";
import { copyObjectUp } from "./object";
import type { Origins } from "./origin";
import type { Found, UnionView } from "./view";
import type { WorkDir } from "./workdir";

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** Lower files at least this big may have their data copied in the background (background.ts). */
const BACKGROUND_COPY_MIN = 32n << 20n;

export interface CopyUpSettings {
  /** Flush a copy's data to disk before it is published (false: fsync=0, volatile). */
  sync: boolean;
  /** Extended attributes never copied (the union's own bookkeeping). */
  skipXattr: (name: string) => boolean;
  /** How materialized directories are marked opaque. */
  wh: WhiteoutWriter;
  /** Where copies record the inode number of their original. */
  origins: Origins;
}

export interface CopyUpHow {
  /** A regular file's data is copied (default); false: metadata only (O_TRUNC open, truncate to 0). */
  data?: boolean;
  /** A directory is materialized with everything below it, opaque (rename); default: alone, empty. */
  whole?: boolean;
}

/** What a staged copy holds: one lower file's version (lower layers never change under a union). */
function stagingKey(path: string, r: Found): string {
  return `${r.layer}\0${relOf(path)}\0${r.st.size}\0${r.st.mtimeNs}\0${r.st.ino}`;
}

export class CopyUp implements TreeCopier {
  private copies = 0;
  /** Union paths of the directories changed since the last `takeChanged`. */
  private readonly changedDirs = new Set<string>();
  private readonly background: BackgroundCopier;

  constructor(
    private readonly layers: readonly Layer[],
    readonly upper: WritableLayer,
    private readonly work: WorkDir,
    readonly view: UnionView,
    private readonly settings: CopyUpSettings,
  ) {
    this.background = new BackgroundCopier(work);
  }

  get wh(): WhiteoutWriter {
    return this.settings.wh;
  }

  get origins(): Origins {
    return this.settings.origins;
  }

  /** Copy-ups made so far: a handle opened on a lower file before the last one may have a copy to follow. */
  get epoch(): number {
    return this.copies;
  }

  /**
   * Makes the object at `path` (found as `r`, else looked up) live in the writable layer, its parents
   * first; nothing when it does already. ENOENT when there is nothing at `path`.
   */
  copyUp(path: string, r?: Found, how: CopyUpHow = {}): void {
    const dirLayers = r !== undefined ? r.dirLayers : this.view.dirLayersOf(path);
    if (dirLayers === undefined) this.copyFile(path, r ?? this.need(path), how.data ?? true);
    else if (how.whole === true) this.materialize(path, r ?? this.need(path));
    else this.copyDir(path);
  }

  /** Directory `path`'s attributes changed in the writable layer. */
  changed(path: string): void {
    this.changedDirs.add(path);
  }

  /**
   * Union paths of the directories changed since the last call; undefined when none did (every request
   * asks: an array per request, promoted to old space with its reply, raised the daemon's RSS by ~20 MB).
   */
  takeChanged(): string[] | undefined {
    if (this.changedDirs.size === 0) return undefined;
    const out = [...this.changedDirs];
    this.changedDirs.clear();
    return out;
  }

  private need(path: string): Found {
    const r = this.view.resolve(path);
    if (r === undefined) throw fsError("ENOENT", path);
    return r;
  }

  /** Makes sure directory `path` exists in the writable layer, copying it (and its parents) up. */
  private copyDir(path: string): void {
    const dirLayers = this.view.dirLayersOf(path);
    if (dirLayers === undefined) throw fsError("ENOENT", path);
    if (dirLayers[0] === this.upper.index) return;
    this.copyDir(splitPath(path)[0]);
    this.copyObject(path, this.need(path), true);
    this.view.invalidate();
  }

  /** Copies the non-directory at `path` up (its parent first). */
  private copyFile(path: string, r: Found, withData: boolean): void {
    if (r.layer === this.upper.index) return;
    this.copyDir(splitPath(path)[0]);
    this.copyObject(path, r, withData);
  }

  private materialize(path: string, r: Found): void {
    materialize(this, path, r);
    this.copies++;
  }

  private copyObject(path: string, r: Found, withData: boolean): void {
    const key = stagingKey(path, r);
    const staged = withData ? this.background.take(key) : undefined;
    if (!withData) this.background.drop(key);
    copyObjectUp(this.layers[r.layer] as Layer, relOf(path), r.st, this.upper, this.work, {
      withData,
      skipXattr: this.settings.skipXattr,
      origin: r.dirLayers ? undefined : { ino: this.view.inoOf(path, r), origins: this.settings.origins },
      staged,
      sync: this.settings.sync,
    });
    this.copies++;
    this.changed(splitPath(path)[0]);
  }

  // ---- background copies ---------------------------------------------------------------------------

  /**
   * When copying `path` up would mean copying a big lower file's data, starts that copy in the
   * background and returns its key: the caller holds back the request that wanted the copy-up until
   * `finished()` names the key, then serves it (its copy-up takes the staged data over). Undefined when
   * there is nothing long to wait for.
   */
  stage(path: string): string | undefined {
    const r = this.view.resolve(path);
    if (r === undefined || r.dirLayers || r.layer === this.upper.index) return undefined;
    if ((Number(r.st.mode) & S_IFMT) !== S_IFREG || r.st.size < BACKGROUND_COPY_MIN) return undefined;
    const key = stagingKey(path, r);
    const state = this.background.state(key);
    if (state !== undefined) return state === "copying" ? key : undefined;
    const src = (this.layers[r.layer] as Layer).open(relOf(path));
    if (src.fd === undefined) {
      src.close();
      return undefined; // copied in the foreground: the copy thread needs a descriptor
    }
    const tmp = this.work.temp();
    const dst = this.work.layer.create(tmp, fs.constants.O_WRONLY | fs.constants.O_EXCL, 0o600);
    this.background.start(key, src, dst, tmp, r.st.size, this.settings.sync);
    return key;
  }

  /** The descriptor that becomes readable when a background copy finished (see `finished`). */
  get wakeFd(): number {
    return this.background.wakeFd;
  }

  /** The background copies running now (for the debug log). */
  progress(): CopyProgress[] {
    return this.background.progress();
  }

  /** Keys of the background copies that finished since the last call. */
  finished(): string[] {
    return this.background.collect();
  }

  close(): void {
    this.background.close();
  }
}
