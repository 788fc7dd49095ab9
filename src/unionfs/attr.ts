/**
 * Attributes as the union reports them.
 *
 * Invariants: inode numbers are unique across layers (the raw number when every layer is on one
 * filesystem, else tagged with the layer's device index in the top bits, by layer order, so the same
 * branches give the same numbers on every mount); a merged directory reports the inode number of its
 * bottom-most layer, so it keeps its number when it is copied up, and when it is materialized (which
 * records that number as its origin: UnionCore.inoOf). Generations are 0 except for
 * objects that report their own number in the writable branch (`genOf`).
 */
import type { Stat } from "../sys/stat";
import type { Layer } from "../layer";
import type { Attr, StatFs } from "./types";

export class InoMapper {
  private readonly devIndex = new Map<bigint, number>();

  constructor(layers: readonly Layer[]) {
    for (const l of layers) if (!this.devIndex.has(l.dev)) this.devIndex.set(l.dev, this.devIndex.size);
  }

  ino(st: Stat): bigint {
    if (this.devIndex.size <= 1) return st.ino;
    const tag = BigInt(this.devIndex.get(st.dev) ?? 0);
    return (tag << 56n) ^ st.ino;
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
