/**
 * What every part of the union shares: its layers, lookups, what it reports, copy-up and open handles.
 * The parts (objects.ts, files.ts, namespace.ts, dirs.ts, xattrs.ts) each serve one concern on it;
 * union.ts composes them into `UnionOps`.
 *
 * Invariants:
 * - Only the top layer is ever written, and only when it is writable; otherwise every change is EROFS.
 * - Anything changed that lives in a lower layer is copied up first (`copyUp`, src/cow: parents before
 *   children, through the work dir), so the lower layers stay byte-for-byte unchanged.
 * - Calls are synchronous and the transport serves one request at a time: operations on one path are
 *   therefore serialised.
 */
import { CopyUp, Origins, type CopyUpHow, type Found, type UnionView, type WorkDir } from "../cow";
import { fsError } from "../errors";
import { isWritable, relOf, splitPath, type Layer, type WritableLayer } from "../layer";
import type { XattrNamespace } from "../sys/xattrns";
import { whiteoutWriter, type WhiteoutWriter } from "../whiteout";
import { Attrs } from "./attr";
import type { AtimePolicy } from "./atime";
import type { PassthroughMode } from "./config";
import { Handles } from "./handles";
import type { IdMap } from "./idmap";
import { mergedListing } from "./listing";
import { Resolver, type Resolved } from "./resolve";

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

/** Extended attributes that are layer bookkeeping, never shown or copied. */
export function isPrivateXattr(name: string): boolean {
  return (
    name.startsWith("trusted.overlay.") ||
    name.startsWith("user.overlay.") ||
    name.startsWith("trusted.unionfs.") ||
    name.startsWith("user.unionfs.")
  );
}

export class UnionState {
  readonly upper: WritableLayer | undefined;
  readonly lookup: Resolver;
  readonly attrs: Attrs;
  /** Copy-up into the writable layer; undefined in a read-only union. */
  readonly cow: CopyUp | undefined;
  readonly handles = new Handles();

  constructor(
    readonly layers: readonly Layer[],
    readonly work: WorkDir | undefined,
    readonly wh: WhiteoutWriter = whiteoutWriter("aufs"),
    readonly opts: UnionOptions = {},
  ) {
    const top = layers[0];
    if (!top) throw fsError("EINVAL", "a union needs at least one layer");
    this.upper = isWritable(top) ? top : undefined;
    if (this.upper && !work) throw fsError("EINVAL", "a writable union needs a work dir");
    this.lookup = new Resolver(layers);
    const origins = new Origins(opts.xattrs ?? "trusted");
    this.attrs = new Attrs(layers, this.upper, origins, opts.uids, opts.gids);
    const settings = { sync: opts.noFsync !== true, skipXattr: isPrivateXattr, wh, origins };
    this.cow = this.upper && work && new CopyUp(layers, this.upper, work, this.view(), settings);
  }

  /** What copy-up sees of the union: its lookups and the numbers it reports. */
  private view(): UnionView {
    return {
      resolve: (path) => this.lookup.resolve(path),
      dirLayersOf: (path) => this.lookup.dirLayersOf(path),
      names: (path, dirLayers) =>
        mergedListing(this.layers, dirLayers, relOf(path), this.lookup.lowerDirs).map((e) => e.name),
      inoOf: (path, r) => this.attrs.inoOf(path, r),
      invalidate: () => this.lookup.invalidate(),
    };
  }

  need(path: string): Resolved {
    const r = this.lookup.resolve(path);
    if (!r) throw fsError("ENOENT", path);
    return r;
  }

  layer(i: number): Layer {
    return this.layers[i] as Layer;
  }

  /** The writable layer; EROFS when the union has none. */
  writable(): WritableLayer {
    if (!this.upper) throw fsError("EROFS", "the union has no writable branch");
    return this.upper;
  }

  /** Copies the object at `path` (found as `r`) up (src/cow `CopyUp.copyUp`); EROFS when read-only. */
  copyUp(path: string, r?: Found, how?: CopyUpHow): void {
    this.writable();
    (this.cow as CopyUp).copyUp(path, r, how);
  }

  /** Copy-ups made so far (see `CopyUp.epoch`). */
  get epoch(): number {
    return this.cow?.epoch ?? 0;
  }

  /** Is something provided at `path` by a layer below the top one (ignoring the top layer's whiteouts)? */
  below(path: string): Resolved | undefined {
    if (path === "/") return undefined;
    const [dir, name] = splitPath(path);
    return this.lookup.lookupBelow(dir, name, 0);
  }

  /** Releases every handle, the layers and the work dir. */
  close(): void {
    this.lookup.close(); // first: whatever fails below, the shared listings let the layers go
    this.cow?.close();
    this.handles.closeAll();
    for (const layer of this.layers) layer.close();
    this.work?.close();
  }
}
