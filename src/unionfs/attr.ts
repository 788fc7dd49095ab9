/**
 * Attributes as the union reports them.
 *
 * Invariants: inode numbers are unique across layers (the raw number when every layer is on one
 * filesystem, else tagged with the layer's device index in the top bits, by layer order, so the same
 * branches give the same numbers on every mount); a merged directory reports the inode number of its
 * bottom-most layer, so it keeps its number when it is copied up, and when it is materialized (which
 * records that number as its origin: `Attrs.inoOf`). Generations are 0 except for objects that report
 * their own number in the writable branch (`genOf`). Owners are shown as the mount maps them.
 */
import type { Stat } from "../sys/stat";
import type { Found, InoOf, Origins } from "../cow";
import { relOf, type Layer, type WritableLayer } from "../layer";
import { IdMap } from "./idmap";
import type { Attr, StatFs } from "./types";

export class InoMapper {
  private readonly devIndex = new Map<bigint, number>();

  constructor(layers: readonly Layer[]) {
    for (const l of layers) if (!this.devIndex.has(l.dev)) this.devIndex.set(l.dev, this.devIndex.size);
  }

  ino(st: InoOf): bigint {
    if (this.devIndex.size <= 1) return st.ino;
    const tag = BigInt(this.devIndex.get(st.dev) ?? 0);
    return (tag << 56n) ^ st.ino;
  }
}

/** What the union reports of its objects: attributes, inode numbers, owners. */
export class Attrs {
  readonly inos: InoMapper;

  constructor(
    private readonly layers: readonly Layer[],
    private readonly upper: WritableLayer | undefined,
    /** Where copies record the number of their original. */
    readonly origins: Origins,
    readonly uids: IdMap = new IdMap(),
    readonly gids: IdMap = new IdMap(),
  ) {
    this.inos = new InoMapper(layers);
  }

  /** Attributes of the object at `path`, found as `r`. */
  attrOf(path: string, r: Found): Attr {
    const ino = this.inoOf(path, r);
    const own = r.layer === this.upper?.index && ino === this.inos.ino(r.st);
    return this.shown(toAttr(r.st, ino, own ? genOf(r.st) : 0));
  }

  /** Attributes of an object as an open file stats it, with its own inode number (no origin looked at). */
  attrOfStat(st: Stat): Attr {
    const own = this.upper !== undefined && st.dev === this.upper.dev;
    return this.shown(toAttr(st, this.inos.ino(st), own ? genOf(st) : 0));
  }

  /** Attributes with ownership as the mount shows it (uid/gid mapping, squashing). */
  private shown(a: Attr): Attr {
    if (!this.uids.identity) a.uid = this.uids.toShown(a.uid);
    if (!this.gids.identity) a.gid = this.gids.toShown(a.gid);
    return a;
  }

  /**
   * The inode number the union reports: a merged directory reports its bottom-most layer's, an object
   * only in the top layer the number recorded when it was copied up or materialized (its origin), so
   * neither copy-up nor materialization changes it; a new object reports its own.
   */
  inoOf(path: string, r: Found): bigint {
    const bottom = r.dirLayers ? (r.dirLayers[r.dirLayers.length - 1] as number) : r.layer;
    if (bottom === this.upper?.index) {
      return this.origins.read(this.upper, relOf(path)) ?? this.inos.ino(r.st);
    }
    if (bottom === r.layer) return this.inos.ino(r.st);
    return this.inos.ino(r.bottom ?? (this.layers[bottom] as Layer).tryLstat(relOf(path)) ?? r.st);
  }
}

/**
 * The generation of an object whose inode number is its own in the writable branch: its birth time
 * folded to 32 bits (0 where the filesystem records none). A number the filesystem reuses for a new
 * object then comes with another generation, so a file handle of the deleted one is stale.
 */
export function genOf(st: Stat): number {
  const ns = st.birthtimeNs ?? 0n;
  return Number(BigInt.asUintN(32, ns ^ (ns >> 32n)));
}

export function toAttr(st: Stat, ino: bigint, gen = 0): Attr {
  return {
    ino,
    gen,
    size: st.size,
    blocks: st.blocks,
    atimeNs: st.atimeNs,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    blksize: Number(st.blksize),
  };
}

/** statfs of the storage `layer` lives on, as the union reports it. */
export function statFsOf(layer: Layer): StatFs {
  const s = layer.statfs();
  return {
    bsize: s.bsize,
    frsize: s.bsize,
    blocks: s.blocks,
    bfree: s.bfree,
    bavail: s.bavail,
    files: s.files,
    ffree: s.ffree,
    namelen: 255,
  };
}
