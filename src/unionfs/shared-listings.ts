/**
 * Listings of read-only layers' directories, shared by every union this thread serves that has the same
 * layer (by `Layer.identity`): the shared server's mounts of one image list each directory of its
 * layers once and hold its names once, not once per mount (20 mounts of one tree: about a sixth of their
 * memory).
 *
 * Invariants:
 * - Only layers with an identity are shared, and only while at least one union holds them (`acquire`,
 *   `release`): when the last one lets a layer go, its listings are dropped, so a layer changed between
 *   two mounts (no mount had it meanwhile) is listed afresh. While held, a layer is assumed unchanged,
 *   as each union assumes of its read-only layers anyway.
 * - Bounded by the names held (MAX_NAMES); a union keeps the listings it uses in its own cache
 *   (dircache.ts), so one dropped here lives on there until that cache lets it go too.
 * - One store per thread (module state), owned by the thread that serves the unions.
 */
import { LRUCache } from "lru-cache";
import type { NameList } from "./namelist";

/** A listing: its names and their types. */
export type Names = NameList;

const MAX_NAMES = 2_000_000;

class SharedListings {
  private readonly cache = new LRUCache<string, Names>({
    maxSize: MAX_NAMES,
    sizeCalculation: (m) => m.size + 1,
  });
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

  /** The listing of `rel` in the held layer `identity`, if one was stored. */
  get(identity: string, rel: string): Names | undefined {
    return this.cache.get(keyOf(identity, rel));
  }

  set(identity: string, rel: string, names: Names): void {
    if (this.users.has(identity)) this.cache.set(keyOf(identity, rel), names);
  }

  /** Layers held and listings stored (for tests). */
  get counts(): { layers: number; listings: number } {
    return { layers: this.users.size, listings: this.cache.size };
  }
}

function keyOf(identity: string, rel: string): string {
  return `${identity}\0${rel}`;
}

export const sharedListings = new SharedListings();
