/**
 * A hash index of slots (small integers naming records kept elsewhere, see node-slots.ts): open
 * addressing with linear probing in one Int32Array, 4 bytes a bucket, where a Map costs about 50 bytes
 * an entry and an object per value.
 *
 * Invariants:
 * - A slot's key is not stored here: the owner gives the hash of a slot's key (`hashOf`) and finds one
 *   by walking the probe of a hash itself (`start`, `at`, `next`), testing each slot against its key. A slot's key must not change while the slot
 *   is in the index (take it out, change it, put it back).
 * - At most 70 % of the buckets are used (the table doubles past that), so a probe ends at an empty
 *   bucket, after about two buckets for a hit and six for a miss.
 * - Removal shifts the following run of entries back (no tombstones): every entry stays reachable from
 *   its home bucket without passing an empty one.
 * - Owned by whoever owns the records (one thread); no allocation on lookups.
 */

const EMPTY = -1;
const MIN_BUCKETS = 16;
const MAX_LOAD = 0.7;

/** Scrambles a 32-bit hash so that neighbouring keys spread over the table. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** FNV-1a of a string's UTF-16 code units, started from `seed`. */
export function hashString(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return mix32(h);
}

/** A 32-bit hash of a non-negative integer below 2^53. */
export function hashNumber(n: number): number {
  return mix32((n >>> 0) ^ Math.imul((n / 4294967296) >>> 0, 0x9e3779b1));
}

export class SlotIndex {
  private buckets = new Int32Array(MIN_BUCKETS).fill(EMPTY);
  private mask = MIN_BUCKETS - 1;
  private used = 0;

  constructor(private readonly hashOf: (slot: number) => number) {}

  get size(): number {
    return this.used;
  }

  /** The first bucket of the probe for `hash`. */
  start(hash: number): number {
    return hash & this.mask;
  }

  /** The slot in bucket `i`; negative at the end of a probe (nothing further has that hash). */
  at(i: number): number {
    return this.buckets[i] as number;
  }

  /** The bucket after `i` in a probe. */
  next(i: number): number {
    return (i + 1) & this.mask;
  }

  /** Adds `slot` (not in the index: the caller looked for it first). */
  add(slot: number): void {
    if (this.used + 1 > this.buckets.length * MAX_LOAD) this.grow();
    this.put(slot);
    this.used++;
  }

  /** Takes `slot` out; false when it was not in. */
  remove(slot: number): boolean {
    const b = this.buckets;
    let i = this.hashOf(slot) & this.mask;
    while (b[i] !== slot) {
      if (b[i] === EMPTY) return false;
      i = (i + 1) & this.mask;
    }
    // Backward shift: move later entries of the run into the hole when their home allows it.
    for (let j = (i + 1) & this.mask; b[j] !== EMPTY; j = (j + 1) & this.mask) {
      const home = this.hashOf(b[j] as number) & this.mask;
      if (((j - home) & this.mask) >= ((j - i) & this.mask)) {
        b[i] = b[j] as number;
        i = j;
      }
    }
    b[i] = EMPTY;
    this.used--;
    return true;
  }

  private put(slot: number): void {
    let i = this.hashOf(slot) & this.mask;
    while (this.buckets[i] !== EMPTY) i = (i + 1) & this.mask;
    this.buckets[i] = slot;
  }

  private grow(): void {
    const old = this.buckets;
    this.buckets = new Int32Array(old.length * 2).fill(EMPTY);
    this.mask = this.buckets.length - 1;
    for (const slot of old) if (slot !== EMPTY) this.put(slot);
  }
}
