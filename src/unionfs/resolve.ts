/**
 * Lookup: which layer provides a union path, and which layers a merged directory is made of.
 *
 * Invariants:
 * - A name is provided by the topmost layer (among those its parent directory is merged from) that has
 *   it; an entry beats a whiteout in the same layer; a whiteout, a non-directory or an opaque directory
 *   stops the search for everything below it.
 * - `dirLayers` of a directory lists, topmost first, every layer whose directory of that name is merged
 *   into it. Only these lists are cached (never attributes); any change to the directory structure
 *   calls `invalidate()`.
 * - Layers are assumed not to change behind the union's back (as fuse-overlayfs assumes).
 */
import type { Stat } from "../sys/stat";
import { LRUCache } from "lru-cache";
import { relOf, splitPath, type Layer } from "../layer";
import { hidesName, isOpaque, isReservedName, isWhiteoutEntry, markersOf } from "../whiteout";
import type { InoOf } from "../cow";
import { LowerDirCache, type DirNames } from "./dircache";

export interface Resolved {
  /** Index of the layer that provides the object (the topmost one). */
  layer: number;
  st: Stat;
  /** For directories: the merged layers, topmost first. Undefined for everything else. */
  dirLayers: number[] | undefined;
  /** For a directory merged from several layers: the bottom-most one's number, when known (cow/view.ts). */
  bottom?: InoOf | undefined;
}

/**
 * A directory's merged layers as cached (an interned list: never changed once cached), with the
 * bottom-most one's number when it is not the top's.
 */
interface Merged {
  layers: number[];
  bottom: InoOf | undefined;
}

/** Distinct layer lists kept interned before the table starts over. */
const MAX_INTERNED = 4096;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** One name looked up in one directory, across its layers: what every layer's probe shares. */
class Probe {
  private markerNames: string[] | undefined;

  constructor(
    readonly dirRel: string,
    readonly name: string,
    /** The read-only layers' cached listings of the directory. */
    readonly listings: DirNames,
  ) {}

  /** The marker entries that would white the name out (made on first need). */
  get markers(): string[] {
    return (this.markerNames ??= markersOf(this.name));
  }
}

export function isDirStat(st: Stat): boolean {
  return (Number(st.mode) & S_IFMT) === S_IFDIR;
}

export class Resolver {
  /** Bounded by a size (one per entry), not by `max`: lru-cache allocates `max` slots up front (~1.5 MiB). */
  private readonly dirCache = new LRUCache<string, Merged>({ maxSize: 65536, sizeCalculation: () => 1 });
  /** Listings of read-only layers' directories (they never change while mounted). */
  readonly lowerDirs: LowerDirCache;
  private readonly lists = new Map<string, number[]>();

  constructor(private readonly layers: readonly Layer[]) {
    this.lowerDirs = new LowerDirCache(layers);
  }

  /** Lets go of what is shared with other unions (the read-only layers' listings). */
  close(): void {
    this.lowerDirs.close();
    this.dirCache.clear();
  }

  /** Drops every cached directory layer list (after any change to the directory structure). */
  invalidate(): void {
    this.dirCache.clear();
  }

  resolve(path: string): Resolved | undefined {
    if (path === "/") return this.resolveRoot();
    const [dir, name] = splitPath(path);
    if (isReservedName(name)) return undefined;
    const parentLayers = this.dirLayersOf(dir);
    return parentLayers && this.lookupIn(dir, parentLayers, name);
  }

  /** The merged layers of directory `path`, or undefined when it is not a visible directory. */
  dirLayersOf(path: string): number[] | undefined {
    const cached = this.dirCache.get(path);
    if (cached) return cached.layers;
    return this.resolve(path)?.dirLayers;
  }

  /** Resolves `name` in directory `dir` looking only at layers listed after position `from` of its list. */
  lookupBelow(dir: string, name: string, below: number): Resolved | undefined {
    const parentLayers = this.dirLayersOf(dir);
    if (!parentLayers) return undefined;
    const rest = parentLayers.filter((i) => i > below);
    return rest.length === 0 ? undefined : this.lookupIn(dir, rest, name, false);
  }

  private resolveRoot(): Resolved {
    const top = this.layers[0] as Layer;
    const st = top.lstat("");
    let dirLayers = this.dirCache.get("/")?.layers;
    if (!dirLayers) {
      dirLayers = [];
      for (const layer of this.layers) {
        dirLayers.push(layer.index);
        if (this.opaque(layer, "")) break;
      }
      this.dirCache.set("/", { layers: dirLayers, bottom: undefined });
    }
    return { layer: top.index, st, dirLayers };
  }

  /**
   * What `layer` has at the probe's name: the object, "whiteout" (it whites the name out), or undefined
   * (nothing). A read-only layer's misses are answered from its cached listing.
   */
  private find(layer: Layer, p: Probe): Stat | "whiteout" | undefined {
    const names = this.lowerDirs.namesIn(p.listings, layer, p.dirRel);
    if (names !== undefined && !names.has(p.name)) {
      return hidesName(layer, p.dirRel, p.markers, names) ? "whiteout" : undefined;
    }
    const rel = `${p.dirRel}/${p.name}`;
    const st = layer.tryLstat(rel);
    if (st === undefined) return hidesName(layer, p.dirRel, p.markers) ? "whiteout" : undefined;
    return isWhiteoutEntry(layer, p.dirRel, rel, st) ? "whiteout" : st;
  }

  private lookupIn(dir: string, parentLayers: number[], name: string, cache = true): Resolved | undefined {
    const dirRel = relOf(dir);
    const p = new Probe(dirRel, name, this.lowerDirs.dir(dirRel));
    // Layers whose listing (held before this lookup) has neither the name nor a marker of it: skipped.
    const merged = p.listings.anywhere !== undefined;
    const lacking = merged && p.listings.lacks(name, p.markers) ? p.listings.byLayer : undefined;
    for (let k = 0; k < parentLayers.length; k++) {
      const index = parentLayers[k] as number;
      if (lacking?.[index] !== undefined) continue;
      const layer = this.layers[index] as Layer;
      const st = this.find(layer, p);
      if (st === "whiteout") return undefined;
      if (st === undefined) continue;
      if (!isDirStat(st)) return { layer: layer.index, st, dirLayers: undefined };
      const m = this.dirLayersFound(parentLayers, k, p, cache);
      return { layer: layer.index, st, dirLayers: m.layers, bottom: m.bottom };
    }
    return undefined;
  }

  /**
   * The layers of directory `name` in `dirRel`, found at position `k` of `parentLayers`: the cached list
   * when it starts with that layer (a lookup or getattr of a known directory then costs one lstat, not
   * the opaque checks of every layer it merges), else merged afresh (and cached when `cache`).
   */
  private dirLayersFound(parentLayers: number[], k: number, p: Probe, cache: boolean): Merged {
    const key = `${p.dirRel}/${p.name}`;
    const cached = cache ? this.dirCache.get(key) : undefined;
    if (cached !== undefined && cached.layers[0] === parentLayers[k]) return cached;
    const m = this.mergeBelow(parentLayers, k, p);
    if (cache) {
      m.layers = this.interned(m.layers);
      this.dirCache.set(key, m);
    }
    return m;
  }

  /** The one shared copy of layer list `layers` (most directories of a stack merge the same layers). */
  private interned(layers: number[]): number[] {
    const key = layers.join(",");
    const known = this.lists.get(key);
    if (known !== undefined) return known;
    if (this.lists.size >= MAX_INTERNED) this.lists.clear();
    this.lists.set(key, layers);
    return layers;
  }

  /** The layers merged into the directory found at position `k` of `parentLayers`. */
  private mergeBelow(parentLayers: number[], k: number, p: Probe): Merged {
    const rel = `${p.dirRel}/${p.name}`;
    const first = this.layers[parentLayers[k] as number] as Layer;
    const m: Merged = { layers: [first.index], bottom: undefined };
    if (this.opaque(first, rel)) return m;
    for (let j = k + 1; j < parentLayers.length; j++) {
      const layer = this.layers[parentLayers[j] as number] as Layer;
      const st = this.find(layer, p);
      if (st === undefined) continue;
      if (st === "whiteout" || !isDirStat(st)) break;
      m.layers.push(layer.index);
      m.bottom = { dev: st.dev, ino: st.ino };
      if (this.opaque(layer, rel)) break;
    }
    return m;
  }

  /**
   * Whether directory `rel` of `layer` is opaque; a read-only layer answers a marker entry from its
   * cached listing of the directory (which a lookup of anything in it loads anyway).
   */
  private opaque(layer: Layer, rel: string): boolean {
    return isOpaque(layer, rel, () => this.lowerDirs.names(layer, rel));
  }
}
