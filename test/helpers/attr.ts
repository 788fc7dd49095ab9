import type { Attr } from "../../src/unionfs/types";

/** A plain Attr for scripted UnionOps in transport tests: owned by root, times zero. */
export function attrFor(mode: number, ino: bigint, size = 0n): Attr {
  return {
    ino,
    size,
    blocks: 0n,
    atimeNs: 0n,
    mtimeNs: 0n,
    ctimeNs: 0n,
    mode,
    nlink: 1,
    uid: 0,
    gid: 0,
    rdev: 0,
    blksize: 4096,
  };
}
