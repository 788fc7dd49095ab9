/**
 * Node ids derived from the union's inode numbers, so that a file handle (which the kernel builds from
 * a node id and a generation, FUSE_EXPORT_SUPPORT) names the same object after the kernel forgot it, and
 * after a remount of the same layers: the union's numbers are stable across copy-up and rename.
 *
 * Invariants:
 * - `stableIdOf` is a bijection between the inode numbers it accepts and the ids in
 *   [FIRST_STABLE_ID, FIRST_EPHEMERAL_ID); `inoOfStableId` is its inverse. An inode number is accepted
 *   when its top byte (the core's layer tag, < 128) and its low 45 bits are all it uses, which every
 *   inode number of ext4, xfs, btrfs and tmpfs does in practice. Ids 0 and 1 are never produced (0 is
 *   no node, 1 the root), nor any id at or above FIRST_EPHEMERAL_ID.
 * - Ids at or above FIRST_EPHEMERAL_ID come from a per-mount counter: for numbers outside the stable
 *   domain and for the second live node of one number (another name of a hard-linked file, a retired
 *   node). All ids stay below 2^53, so a JavaScript number holds them exactly.
 * - `Remembered` holds where forgotten nodes were (parent id, name, inode number): at least the last
 *   MAX_REMEMBERED/2 remembered, at most MAX_REMEMBERED. It is a hint: whatever it yields is checked
 *   against the core before use.
 */
import { ROOT_ID } from "./protocol";

/** The root's id is 1 (FUSE_ROOT_ID): a stable id is above it. */
const FIRST_STABLE = BigInt(ROOT_ID + 1);

const LOW_BITS = 45n;
const LOW_SPAN = 2 ** 45;
const TAG_SHIFT = 56n;
const TAG_LIMIT = 128n;
const LOW_MASK = (1n << TAG_SHIFT) - 1n;
const LOW_LIMIT = 1n << LOW_BITS;

export const FIRST_STABLE_ID = Number(FIRST_STABLE);
/** 2^52: the tag (7 bits) and the low 45 bits of a stable id fill the 52 bits below. */
export const FIRST_EPHEMERAL_ID = 2 ** 52;

/** The stable node id of a union inode number, or undefined when it has none. */
export function stableIdOf(ino: bigint): number | undefined {
  if (ino < LOW_LIMIT) return ino >= FIRST_STABLE ? Number(ino) : undefined; // untagged: all on one fs
  const tag = ino >> TAG_SHIFT;
  const low = ino & LOW_MASK;
  if (tag >= TAG_LIMIT || low >= LOW_LIMIT) return undefined;
  const id = Number(tag) * LOW_SPAN + Number(low);
  return id >= FIRST_STABLE_ID ? id : undefined;
}

/** The union inode number a stable node id stands for; undefined for the root, ephemeral ids and 0. */
export function inoOfStableId(id: number): bigint | undefined {
  if (!Number.isSafeInteger(id) || id < FIRST_STABLE_ID || id >= FIRST_EPHEMERAL_ID) return undefined;
  return (BigInt(Math.floor(id / LOW_SPAN)) << TAG_SHIFT) | BigInt(id % LOW_SPAN);
}

export interface Whereabouts {
  parent: number;
  name: string;
  ino: bigint;
}

/** How many forgotten nodes are remembered (about 100 bytes each). */
export const MAX_REMEMBERED = 200_000;

/**
 * Two generations of maps: entries go into the young one; when it is full, it becomes the old one and
 * the old one is dropped. So the last max/2 entries are always kept, at most `max`, for a Map set each.
 */
export class Remembered {
  private young = new Map<number, Whereabouts>();
  private old = new Map<number, Whereabouts>();

  constructor(private readonly max = MAX_REMEMBERED) {}

  get size(): number {
    let n = this.young.size;
    for (const id of this.old.keys()) if (!this.young.has(id)) n++;
    return n;
  }

  get(id: number): Whereabouts | undefined {
    return this.young.get(id) ?? this.old.get(id);
  }

  set(id: number, where: Whereabouts): void {
    this.young.set(id, where);
    if (this.young.size < this.max / 2) return;
    this.old = this.young;
    this.young = new Map();
  }

  delete(id: number): void {
    this.young.delete(id);
    this.old.delete(id);
  }
}
