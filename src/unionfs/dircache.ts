/**
 * Names of directories in read-only layers, cached: a lookup that misses in a lower layer costs a hash
 * probe instead of two lstats (the name and its aufs whiteout). At 128 layers that is the difference
 * between ~250 syscalls and none for a miss.
 *
 * Invariants: only layers that are not writable are cached, because they never change while mounted
 * (the union's documented assumption, as fuse-overlayfs makes it); the cache is bounded by the total
 * number of names held, not by directories; a directory that cannot be listed is not cached. The
 * listings of one directory path are kept together, one slot per layer (`DirNames`), so a lookup that
 * visits every layer of a deep stack finds them with one cache probe, not one per layer. A layer's
 * listing is taken from, and given to, the thread's store shared by every union with that layer
 * (shared-listings.ts); the union holds its layers there from construction until `close`.
 */
import { LRUCache } from "lru-cache";
import { codeOf } from "../errors";
import type { Layer, RawEntry } from "../layer";
import { NameList } from "./namelist";
import { sharedListings, type Names } from "./shared-listings";

export type { Names };

const MAX_NAMES = 2_000_000;

/** Listings of one directory path from this many layers make it worth keeping their names merged. */
const MERGE_FROM = 8;

/** The cached listings of one directory path: slot i is layer i's, undefined until it was listed. */
export class DirNames {
  readonly byLayer: Array<Names | undefined>;
  /** Names held, plus one: what the directory counts for against MAX_NAMES. */
  size = 1;
  private loaded = 0;
  /**
   * Every name of the listings held, once MERGE_FROM of them are: a name absent from it (and whose
   * whiteout markers are) is in none of them, so a lookup in a deep stack skips those layers at once.
   */
  anywhere: Set<string> | undefined;

  /** `width`: the union's number of layers (the slots are made at once: a sparse array took 170 bytes). */
  constructor(width = 0) {
    this.byLayer = new Array<Names | undefined>(width).fill(undefined);
  }

  add(index: number, names: Names): void {
    this.byLayer[index] = names;
    this.loaded += 1;
    const before = this.anywhere?.size ?? 0;
    if (this.anywhere !== undefined) for (const n of names.keys()) this.anywhere.add(n);
    else if (this.loaded >= MERGE_FROM) this.anywhere = this.merged();
    this.size += names.size + (this.anywhere?.size ?? 0) - before;
  }

  /** Whether none of the listings held has `name` or one of `markers`; false until they are merged. */
  lacks(name: string, markers: readonly string[]): boolean {
    const all = this.anywhere;
    return all !== undefined && !all.has(name) && markers.every((m) => !all.has(m));
  }

  private merged(): Set<string> {
    const all = new Set<string>();
    for (const m of this.byLayer) if (m !== undefined) for (const n of m.keys()) all.add(n);
    return all;
  }
}

export class LowerDirCache {
  private readonly cache = new LRUCache<string, DirNames>({
    maxSize: MAX_NAMES,
    sizeCalculation: (d) => d.size,
  });
  /** The shared identities of the read-only layers, held until `close`. */
  private readonly held = new Set<string>();
  private readonly width: number;

  constructor(layers: readonly Layer[] = []) {
    this.width = layers.length;
    for (const l of layers) if (!l.writable && l.identity !== undefined) this.held.add(l.identity);
    for (const id of this.held) sharedListings.acquire(id);
  }

  /** Lets the shared store drop listings of layers no other union holds. Idempotent. */
  close(): void {
    for (const id of this.held) sharedListings.release(id);
    this.held.clear();
    this.cache.clear();
  }

  /** The listings of directory `rel` known so far: take it once per lookup, then ask `namesIn`. */
  dir(rel: string): DirNames {
    return this.cache.get(rel) ?? new DirNames(this.width);
  }

  /** Entries of `rel` in `layer` (`d`: `dir(rel)`), cached for read-only layers; undefined for writable ones. */
  namesIn(d: DirNames, layer: Layer, rel: string): Names | undefined {
    if (layer.writable) return undefined;
    const known = d.byLayer[layer.index];
    if (known !== undefined) return known;
    const id = layer.identity;
    const shared = id !== undefined && this.held.has(id) && sharedListings.shared(id) ? id : undefined;
    // Observed before the listing is read: a change after it moves the ctime (shared-listings.ts).
    const ctimeNs = shared === undefined ? undefined : layer.tryLstat(rel)?.ctimeNs;
    let m =
      shared === undefined || ctimeNs === undefined ? undefined : sharedListings.take(shared, rel, ctimeNs);
    if (m === undefined) {
      let entries: RawEntry[];
      try {
        entries = layer.readdir(rel);
      } catch (err) {
        const code = codeOf(err);
        if (code === "ENOENT" || code === "ENOTDIR") return NameList.of([]);
        throw err;
      }
      m = NameList.of(entries);
      if (shared !== undefined && ctimeNs !== undefined)
        sharedListings.set(shared, rel, { names: m, ctimeNs });
    }
    d.add(layer.index, m);
    // Set again (not in place): the cache counts a value's size when it is set.
    this.cache.delete(rel);
    this.cache.set(rel, d);
    return m;
  }

  /** Entries of `rel` in `layer`, cached for read-only layers; undefined for writable layers. */
  names(layer: Layer, rel: string): Names | undefined {
    return this.namesIn(this.dir(rel), layer, rel);
  }

  /** The raw listing of `rel` in `layer` (from the cache for read-only layers); `access`: Layer.readdir. */
  list(layer: Layer, rel: string, access = false): RawEntry[] {
    const m = this.names(layer, rel);
    if (m === undefined) return layer.readdir(rel, access);
    return m.entries();
  }
}
