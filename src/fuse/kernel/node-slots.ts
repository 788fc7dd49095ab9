/**
 * The inode table's records (inodes.ts), one slot each, stored column by column in typed arrays: about 60
 * bytes a node plus its name, where an object per node with two Map entries cost about 300 (20 mounts of
 * a 9,000-entry tree: 4 MiB of heap each, most of it this).
 *
 * Invariants:
 * - A slot is either free (on the free list) or holds one node; `alloc` hands out a slot with every
 *   column reset, `release` takes it back and lets go of its name. Slot numbers are reused.
 * - The columns grow together, by a quarter (copied): at most a fifth of the slots is unused slack, where
 *   doubling left up to half (400 KiB of a 9,000-node tree). A caller never keeps a column across an
 *   `alloc`.
 * - Owned by the thread that owns the table.
 */

const INITIAL = 64;
const GROWTH = 1.25;

export const NONE = -1;

/** Bits of `flags`. */
export const enum Flag {
  /** Neither the node nor an ancestor was removed (see inodes.ts). */
  Attached = 1,
  /** In its parent's index of children. */
  Linked = 2,
}
/** Where `flags` keeps the node's Xattrs value (two bits). */
export const XATTR_SHIFT = 2;
export const XATTR_MASK = 3 << XATTR_SHIFT;

export class NodeSlots {
  /** Node id (kept after the kernel forgot the node: its children remember their parent by it). */
  ids = new Float64Array(INITIAL);
  /** Parent slot; NONE for the root and for a node made from a handle before it is placed. */
  parents = new Int32Array(INITIAL);
  /** Lookups the kernel holds. */
  lookups = new Float64Array(INITIAL);
  /** Inode number pinned while live (0: not known yet). */
  inos = new BigUint64Array(INITIAL);
  gens = new Float64Array(INITIAL);
  /** `clockS()` of the last entry reply naming the node. */
  replied = new Uint32Array(INITIAL);
  /** Children in the index under this node (a tree link is kept while it has any). */
  kids = new Int32Array(INITIAL);
  /** Slots whose parent is this one, linked or not (the slot is released only at zero). */
  refs = new Int32Array(INITIAL);
  /** Hash of (parent, name), kept while linked. */
  hashes = new Int32Array(INITIAL);
  /** S_IFMT >> 12. */
  types = new Uint8Array(INITIAL);
  flags = new Uint8Array(INITIAL);
  names: string[] = [];
  private top = 0;
  private readonly free: number[] = [];

  /** Slots in use. */
  get used(): number {
    return this.top - this.free.length;
  }

  alloc(): number {
    const s = this.free.pop() ?? this.top++;
    if (s >= this.ids.length) this.grow();
    this.ids[s] = 0;
    this.parents[s] = NONE;
    this.lookups[s] = 0;
    this.inos[s] = 0n;
    this.gens[s] = 0;
    this.replied[s] = 0;
    this.kids[s] = 0;
    this.refs[s] = 0;
    this.hashes[s] = 0;
    this.types[s] = 0;
    this.flags[s] = 0;
    return s;
  }

  release(s: number): void {
    this.names[s] = "";
    this.flags[s] = 0;
    this.free.push(s);
  }

  private grow(): void {
    const n = Math.ceil(this.ids.length * GROWTH);
    this.ids = grown(this.ids, n);
    this.parents = grown(this.parents, n);
    this.lookups = grown(this.lookups, n);
    this.inos = grown(this.inos, n);
    this.gens = grown(this.gens, n);
    this.replied = grown(this.replied, n);
    this.kids = grown(this.kids, n);
    this.refs = grown(this.refs, n);
    this.hashes = grown(this.hashes, n);
    this.types = grown(this.types, n);
    this.flags = grown(this.flags, n);
  }
}

type Column = Float64Array | Int32Array | Uint32Array | Uint8Array | BigUint64Array;

/** A column of `n` values, `a`'s first. */
function grown<C extends Column>(a: C, n: number): C {
  const b = new (a.constructor as new (length: number) => C)(n);
  (b as unknown as { set(src: C): void }).set(a);
  return b;
}
