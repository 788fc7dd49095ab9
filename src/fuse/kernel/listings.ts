/**
 * Directory listings for READDIR without a directory handle. The kernel offers zero-message opendir
 * (FUSE_NO_OPENDIR_SUPPORT): once OPENDIR answers ENOSYS it never sends OPENDIR or RELEASEDIR again,
 * and caches every listing (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR), so a walk of a known tree costs no
 * round trip per directory. READDIR then comes with fh 0: nothing tells one reader from another, so
 * no reader's position may live here.
 *
 * Invariants:
 * - Offsets are stateless: an entry's offset is its name's cookie (a 53-bit hash, as ext4's htree
 *   directories use name hashes), and a listing is ".", "..", then the entries in cookie order. A
 *   READDIR at offset o resumes with the first entry whose cookie is above o, in whatever the
 *   directory holds now. So any number of readers, reading at once and deleting or creating meanwhile,
 *   each get every name that stays exactly once; no offset is ever invalid, and forgetting a snapshot
 *   loses nothing.
 * - "." carries offset 1 and ".." offset 2; cookies are at least 3. Entries sharing a cookie (a hash
 *   collision) go out in one reply (dirents.ts never splits a run of equal offsets unless it starts the
 *   reply), so resuming after that cookie skips none of them.
 * - A node's snapshot is only a cache of the last listing: taken afresh when the namespace generation
 *   moved since (any request that may change a name bumps it, see dispatch.ts), dropped once a reader
 *   got to the end, and at most MAX_NODES nodes keep one (least recently read dropped first).
 * - Owned by the serving thread, like the rest of the Session.
 */
import { LRUCache } from "lru-cache";
import type { DirEntry } from "../../unionfs/types";

const MAX_NODES = 256;
/** Slots before the core's entries: "." and "..". */
export const DOTS = 2;
/** Cookies start above the offsets of "." and "..". */
const FIRST_COOKIE = DOTS + 1;

/**
 * The offset an entry named `name` (a byte string) carries: two 32-bit multiplicative hashes of its
 * bytes, folded into 53 bits (a JavaScript number holds them exactly, and the kernel's signed offset
 * never goes negative).
 */
export function nameCookie(name: string): number {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9 ^ name.length;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  const cookie = (a >>> 0) * 0x200000 + ((b >>> 0) >>> 11);
  return cookie < FIRST_COOKIE ? cookie + FIRST_COOKIE : cookie;
}

export interface Snapshot {
  /** The directory's entries in cookie order. */
  entries: readonly DirEntry[];
  /** `cookies[i]` is the cookie of `entries[i]`; non-decreasing. */
  cookies: readonly number[];
  generation: number;
}

/** Where a READDIR resumes: slot `start` of `snap` (slot 0 ".", 1 "..", DOTS + i entry i). */
export interface Window {
  snap: Snapshot;
  start: number;
}

/** The offset slot `i` of `snap` carries: the position a READDIR with that offset resumes after. */
export function offsetOfSlot(snap: Snapshot, i: number): number {
  return i < DOTS ? i + 1 : (snap.cookies[i - DOTS] as number);
}

/** Number of cookies at or below `offset` (cookies are sorted). */
function countUpTo(cookies: readonly number[], offset: number): number {
  let lo = 0;
  let hi = cookies.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((cookies[mid] as number) <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The slot a READDIR at `offset` starts with. */
export function startSlot(snap: Snapshot, offset: number): number {
  if (offset < FIRST_COOKIE) return Math.max(0, offset);
  return DOTS + countUpTo(snap.cookies, offset);
}

/** A snapshot of `entries` (any order) in cookie order. */
export function snapshotOf(entries: readonly DirEntry[], generation = 0): Snapshot {
  const keyed = entries.map((e) => ({ e, c: nameCookie(e.name) }));
  keyed.sort((x, y) => x.c - y.c || (x.e.name < y.e.name ? -1 : x.e.name > y.e.name ? 1 : 0));
  return { entries: keyed.map((k) => k.e), cookies: keyed.map((k) => k.c), generation };
}

export class DirListings {
  private readonly nodes = new LRUCache<number, Snapshot>({ max: MAX_NODES });
  private generation = 0;

  /** Something may have changed a name somewhere: later READDIRs take fresh snapshots. */
  changed(): void {
    this.generation++;
  }

  /** The window a READDIR of `nodeid` at `offset` reads; `list()` makes a fresh listing when needed. */
  window(nodeid: number, offset: number, list: () => readonly DirEntry[]): Window {
    let snap = this.nodes.get(nodeid);
    if (snap === undefined || snap.generation !== this.generation) {
      snap = snapshotOf(list(), this.generation);
      this.nodes.set(nodeid, snap);
    }
    return { snap, start: startSlot(snap, offset) };
  }

  /** A reader of `nodeid` got to the end: drop the cached snapshot (the next reader lists afresh). */
  ended(nodeid: number): void {
    this.nodes.delete(nodeid);
  }
}
