/**
 * Listings of read-only layers' directories, shared by every union this thread serves that has the same
 * layer (by `Layer.identity`): the shared server's mounts of one image list each directory of its
 * layers once and hold its names once, not once per mount (20 mounts of one tree: about a sixth of their
 * memory).
 *
 * Invariants:
 * - Only layers with an identity are shared, and a listing is stored or taken only while another union
 *   holds the layer too (`acquire`, `release`): a mount's own daemon, alone with its layers, never pays
 *   the check below; in a shared server, the first mount of a layer keeps what it listed alone to itself
 *   and the later ones share. When the last union lets a layer go, its listings are dropped.
 * - A listing is stored with the directory's ctime as observed (statx) before it was read, and a union
 *   takes it only if the directory's ctime is still that: a change to its entries moves the ctime, so a
 *   union made after a change lists the directory afresh (the kernel gives the first change after a
 *   statx a fine-grained timestamp, so none hides in the same clock tick). Within one union a listing
 *   is never checked again: its read-only layers are assumed unchanged while it is mounted.
 * - Bounded by the names held (MAX_NAMES); a union keeps the listings it uses in its own cache
 *   (dircache.ts), so one dropped here lives on there until that cache lets it go too.
 * - One store per thread (module state), owned by the thread that serves the unions.
 */
import { LRUCache } from "lru-cache";
import type { NameList } from "./namelist";

/** A listing: its names and their types. */
export type Names = NameList;

/** A listing as shared: with the ctime its directory had just before it was read. */
export interface SharedListing {
  names: Names;
  ctimeNs: bigint;
}

const MAX_NAMES = 2_000_000;

class SharedListings {
  private readonly cache = new LRUCache<string, SharedListing>({
    maxSize: MAX_NAMES,
    sizeCalculation: (l) => l.names.size + 1,
  });
  private taken = 0;
  private readonly users = new Map<string, number>();

  /** A union starts to use the layer named `identity`. */
  acquire(identity: string): void {
    this.users.set(identity, (this.users.get(identity) ?? 0) + 1);
  }

  /** A union no longer uses the layer named `identity`: its listings go with the last one. */
  release(identity: string): void {
    const left = (this.users.get(identity) ?? 0) - 1;
    if (left > 0) {
      this.users.set(identity, left);
      return;
    }
    this.users.delete(identity);
    const prefix = keyOf(identity, "");
    for (const key of [...this.cache.keys()]) if (key.startsWith(prefix)) this.cache.delete(key);
  }

  /** Whether more than one union holds the layer `identity` (only then is a listing of it shared). */
  shared(identity: string): boolean {
    return (this.users.get(identity) ?? 0) > 1;
  }

  /** The listing of `rel` in the held layer `identity` if one was stored while its ctime was `ctimeNs`. */
  take(identity: string, rel: string, ctimeNs: bigint): Names | undefined {
    const l = this.cache.get(keyOf(identity, rel));
    if (l === undefined || l.ctimeNs !== ctimeNs) return undefined;
    this.taken++;
    return l.names;
  }

  set(identity: string, rel: string, listing: SharedListing): void {
    if (this.users.has(identity)) this.cache.set(keyOf(identity, rel), listing);
  }

  /** Layers held, listings stored, and listings taken so far (for tests). */
  get counts(): { layers: number; listings: number; taken: number } {
    return { layers: this.users.size, listings: this.cache.size, taken: this.taken };
  }
}

function keyOf(identity: string, rel: string): string {
  return `${identity}\0${rel}`;
}

export const sharedListings = new SharedListings();
