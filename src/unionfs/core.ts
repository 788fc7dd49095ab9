/**
 * The union's foundation: its layers, lookups, reported attributes and copy-up.
 *
 * Invariants:
 * - Only the top layer is ever written, and only when it is writable; otherwise every change is EROFS.
 * - Anything changed that lives in a lower layer is copied up first (parents before children), through
 *   the work dir, so the lower layers stay byte-for-byte unchanged.
 * - Calls are synchronous and the transport serves one request at a time: operations on one path are
 *   therefore serialised.
 */
import * as fs from "node:fs";
import { fsError } from "../errors";
import { isWritable, type Layer, type WritableLayer } from "../layer";
import type { Stat } from "../sys/stat";
import { BackgroundCopier, copyUp, Origins, type WorkDir } from "../cow";
import type { XattrNamespace } from "../sys/xattrns";
import { whiteoutWriter, type WhiteoutWriter } from "../whiteout";
import { genOf, InoMapper, toAttr } from "./attr";
import { IdMap } from "./idmap";
import { Handles, type OpenFile } from "./handles";
import { materialize } from "./materialize";
import { isDirStat, relOf, Resolver, splitPath, type Resolved } from "./resolve";
import type { PassthroughMode } from "./config";
import type { AtimePolicy } from "./atime";
import type { Attr } from "./types";

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const S_IFREG = 0o100000;

/** Extended attributes that are layer bookkeeping, never shown or copied. */
export function isPrivateXattr(name: string): boolean {
  return (
    name.startsWith("trusted.overlay.") ||
    name.startsWith("user.overlay.") ||
    name.startsWith("trusted.unionfs.") ||
    name.startsWith("user.unionfs.")
  );
}

/** Behaviour switches of a union beyond its layers. */
export interface UnionOptions {
  uids?: IdMap;
  gids?: IdMap;
  noXattrs?: boolean;
  noFsync?: boolean;
  /** Which open files may be handed to the kernel for passthrough (default `auto`). */
  passthrough?: PassthroughMode;
  /** What callers' reads do to access times in the writable layer (default relatime); see atime.ts. */
  atime?: AtimePolicy;
  /** Where the union's own xattrs (origins) are written: `trusted.*` (the default) or `user.*`. */
  xattrs?: XattrNamespace;
}

/** Lower files at least this big have their copy-up data copied in the background (background.ts). */
const BACKGROUND_COPY_MIN = 32n << 20n;

/** What a staged copy holds: one lower file's version (lower layers never change under a union). */
function stagingKey(path: string, r: Resolved): string {
  return `${r.layer}\0${relOf(path)}\0${r.st.size}\0${r.st.mtimeNs}\0${r.st.ino}`;
}

export class UnionCore {
  protected readonly uids: IdMap;
  protected readonly gids: IdMap;
  protected readonly upper: WritableLayer | undefined;
  protected readonly resolver: Resolver;
  protected readonly inos: InoMapper;
  protected readonly handles = new Handles();
  protected readonly copier: BackgroundCopier | undefined;
  protected readonly origins: Origins;
  /** Bumped by every copy-up, so read-only handles on lower files know to look for a newer copy. */
  protected copyUpEpoch = 0;

  constructor(
    readonly layers: readonly Layer[],
    protected readonly work: WorkDir | undefined,
    protected readonly wh: WhiteoutWriter = whiteoutWriter("aufs"),
    protected readonly opts: UnionOptions = {},
  ) {
    const top = layers[0];
    if (!top) throw fsError("EINVAL", "a union needs at least one layer");
    this.upper = isWritable(top) ? top : undefined;
    if (this.upper && !work) throw fsError("EINVAL", "a writable union needs a work dir");
    this.copier = work && new BackgroundCopier(work);
    this.resolver = new Resolver(layers);
    this.inos = new InoMapper(layers);
    this.uids = opts.uids ?? new IdMap();
    this.gids = opts.gids ?? new IdMap();
    this.origins = new Origins(opts.xattrs ?? "trusted");
  }

  // ---- lookups -------------------------------------------------------------------------------------

  protected need(path: string): Resolved {
    const r = this.resolver.resolve(path);
    if (!r) throw fsError("ENOENT", path);
    return r;
  }

  protected layer(i: number): Layer {
    return this.layers[i] as Layer;
  }

  protected writable(): WritableLayer {
    if (!this.upper) throw fsError("EROFS", "the union has no writable branch");
    return this.upper;
  }

  protected attrOf(path: string, r: Resolved): Attr {
    const ino = this.inoOf(path, r);
    const own = r.layer === this.upper?.index && ino === this.inos.ino(r.st);
    return this.shown(toAttr(r.st, ino, own ? genOf(r.st) : 0));
  }

  /** Attributes of an object as an open fd stats it, with its own inode number (no origin looked at). */
  protected attrOfStat(st: Stat): Attr {
    const own = this.upper !== undefined && st.dev === this.upper.dev;
    return this.shown(toAttr(st, this.inos.ino(st), own ? genOf(st) : 0));
  }

  /** Attributes with ownership as the mount shows it (uid/gid mapping, squashing). */
  protected shown(a: Attr): Attr {
    if (!this.uids.identity) a.uid = this.uids.toShown(a.uid);
    if (!this.gids.identity) a.gid = this.gids.toShown(a.gid);
    return a;
  }

  /**
   * The inode number the union reports: a merged directory reports its bottom-most layer's, an object
   * only in the top layer the number recorded when it was copied up or materialized (its origin), so
   * neither copy-up nor materialization changes it; a new object reports its own.
   */
  protected inoOf(path: string, r: Resolved): bigint {
    const bottom = r.dirLayers ? (r.dirLayers[r.dirLayers.length - 1] as number) : r.layer;
    if (bottom === this.upper?.index) {
      return this.origins.read(this.upper, relOf(path)) ?? this.inos.ino(r.st);
    }
    if (bottom === r.layer) return this.inos.ino(r.st);
    return this.inos.ino(this.layer(bottom).tryLstat(relOf(path)) ?? r.st);
  }

  /** Is something provided at `path` by a layer below the top one (ignoring the top layer's whiteouts)? */
  protected below(path: string): Resolved | undefined {
    if (path === "/") return undefined;
    const [dir, name] = splitPath(path);
    return this.resolver.lookupBelow(dir, name, 0);
  }

  copyUps(): number {
    return this.copyUpEpoch;
  }

  getattr(path: string, fh?: number): Attr {
    const f = this.handles.maybeFile(fh);
    if (f) {
      // A handle opened before a copy-up reports (and then reads) the copy, not the old lower file.
      if (f.epoch !== this.copyUpEpoch) this.followCopyUp(f);
      const st = f.file.fstat();
      const r = this.resolver.resolve(path);
      return r && !isDirStat(r.st) && r.st.ino === st.ino ? this.attrOf(path, r) : this.attrOfStat(st);
    }
    return this.attrOf(path, this.need(path));
  }

  /**
   * A read-only handle opened on a lower file before that file was copied up reads the copy from now
   * on, so it sees writes made through other handles (overlayfs before Linux 4.19 did not:
   * docker/for-linux#72).
   */
  protected followCopyUp(f: OpenFile): void {
    f.epoch = this.copyUpEpoch;
    if (!this.upper || f.layer === this.upper.index) return;
    const r = this.resolver.resolve(f.path);
    if (!r || r.dirLayers || r.layer !== this.upper.index) return;
    const mine = this.inos.ino(f.file.fstat());
    if (this.origins.read(this.upper, relOf(f.path)) !== mine) return;
    const file = this.upper.openAccess(
      relOf(f.path),
      fs.constants.O_RDONLY | (f.flags & fs.constants.O_NOATIME),
    );
    f.file.close();
    f.file = file;
    f.upper = file;
    f.layer = this.upper.index;
  }

  readlink(path: string): string {
    const r = this.need(path);
    if ((Number(r.st.mode) & S_IFMT) !== S_IFLNK) throw fsError("EINVAL", path);
    return this.layer(r.layer).readlink(relOf(path));
  }

  access(path: string, mask: number): void {
    this.need(path);
    if (mask & fs.constants.W_OK && !this.upper) throw fsError("EROFS", path);
  }

  // ---- copy-up -------------------------------------------------------------------------------------

  /** Makes sure directory `path` exists in the writable layer, copying it (and its parents) up. */
  protected ensureUpperDir(path: string): void {
    const upper = this.writable();
    const dirLayers = this.resolver.dirLayersOf(path);
    if (!dirLayers) throw fsError("ENOENT", path);
    if (dirLayers[0] === upper.index) return;
    this.ensureUpperDir(splitPath(path)[0]);
    this.copyUpObject(path, this.need(path), true);
    this.resolver.invalidate();
  }

  /** Copies the non-directory at `path` up (its parent first). No-op when it is already in the top layer. */
  protected copyUpFile(path: string, r: Resolved, withData: boolean): void {
    if (r.layer === this.writable().index) return;
    this.ensureUpperDir(splitPath(path)[0]);
    this.copyUpObject(path, r, withData);
  }

  protected copyUpObject(path: string, r: Resolved, withData: boolean): void {
    const upper = this.writable();
    const key = stagingKey(path, r);
    const staged = withData ? this.copier?.take(key) : undefined;
    if (!withData) this.copier?.drop(key);
    copyUp(this.layer(r.layer), relOf(path), r.st, upper, this.work as WorkDir, {
      withData,
      skipXattr: isPrivateXattr,
      origin: r.dirLayers ? undefined : { ino: this.inos.ino(r.st), origins: this.origins },
      staged,
      sync: this.opts.noFsync !== true,
    });
    this.copyUpEpoch++;
  }

  // ---- background copies ---------------------------------------------------------------------------

  /**
   * When copying `path` up would mean copying a big lower file's data, starts that copy in the
   * background and returns its key: the caller holds back the request that wanted the copy-up until
   * `finishedCopies()` names the key, then serves it (its copy-up takes the staged data over).
   * Undefined when there is nothing long to wait for.
   */
  stageCopyUp(path: string): string | undefined {
    if (this.upper === undefined || this.work === undefined || this.copier === undefined) return undefined;
    const r = this.resolver.resolve(path);
    if (r === undefined || r.dirLayers || r.layer === this.upper.index) return undefined;
    if ((Number(r.st.mode) & S_IFMT) !== S_IFREG || r.st.size < BACKGROUND_COPY_MIN) return undefined;
    const key = stagingKey(path, r);
    const state = this.copier.state(key);
    if (state !== undefined) return state === "copying" ? key : undefined;
    const src = this.layer(r.layer).open(relOf(path));
    if (src.fd === undefined) {
      src.close();
      return undefined; // copied in the foreground: the copy thread needs a descriptor
    }
    const tmp = this.work.temp();
    const dst = this.work.layer.create(tmp, fs.constants.O_WRONLY | fs.constants.O_EXCL, 0o600);
    this.copier.start(key, src, dst, tmp, r.st.size, this.opts.noFsync !== true);
    return key;
  }

  /** The descriptor that becomes readable when a background copy finished (see `finishedCopies`). */
  copyWakeFd(): number {
    if (this.copier === undefined) throw fsError("EINVAL", "a read-only union copies nothing");
    return this.copier.wakeFd;
  }

  /** Keys of the background copies that finished since the last call. */
  finishedCopies(): string[] {
    return this.copier?.collect() ?? [];
  }

  /** Copies up whatever `path` is (file or directory); returns its layer-relative path. */
  protected copyUpAny(path: string): string {
    const r = this.need(path);
    if (r.dirLayers) this.ensureUpperDir(path);
    else this.copyUpFile(path, r, true);
    return relOf(path);
  }

  protected moveToTop(path: string, r: Resolved): void {
    if (!r.dirLayers) return this.copyUpFile(path, r, true);
    materialize(
      {
        layers: this.layers,
        upper: this.writable(),
        resolver: this.resolver,
        wh: this.wh,
        origins: this.origins,
        inoOf: (p, rp) => this.inoOf(p, rp),
        ensureUpperDir: (p) => this.ensureUpperDir(p),
        copyUpFile: (p, rp) => this.copyUpFile(p, rp, true),
      },
      path,
      r,
    );
    this.copyUpEpoch++;
  }
}
