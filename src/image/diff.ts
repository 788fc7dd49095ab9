/**
 * `diff`: what a layer changes, one line per path, with `docker diff`'s and `podman diff`'s letters:
 * A added, C changed, D deleted.
 *
 * Invariants:
 * - C needs the lower layers: a path is C when the merged view of the lowers (whiteouts and opaque
 *   directories honoured, exactly as the union resolves it) has something there; without lowers every
 *   path the layer provides is A.
 * - An opaque directory is A or C like any other; with lowers, each name the lowers' merged view has
 *   in it and the layer does not provide is D (the opaque directory deleted it).
 * - A path the layer both provides and whites out is reported once, as provided.
 * - The mount points a container engine makes in a container's rw layer are not changes the program
 *   made, and are left out unless `all`, as `podman diff` leaves them out (libpod's `initInodes`):
 *   `/dev`, `/proc`, `/sys`, `/run`, `/run/secrets`, `/run/notify` when they are directories holding
 *   nothing else; `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, `/run/.containerenv`,
 *   `/run/podman-init` when they are empty files (bind-mount targets); `/etc/mtab` when it is the link
 *   to `/proc/…/mounts` the runtime makes. The same path holding anything else is listed.
 * - Paths an `exclude` glob matches (exclude.ts) are left out, with all they hold.
 * - Lines are sorted by path bytes; paths print through `showPath`, so each line stays one line of text.
 */
import type { Layer } from "../layer";
import { mergedListing } from "../unionfs/listing";
import { Resolver } from "../unionfs/resolve";
import { excluder } from "./exclude";
import {
  layerDir,
  openLayerDir,
  showPath,
  typeOf,
  walkLayer,
  S_IFDIR,
  S_IFLNK,
  S_IFREG,
  type EntryItem,
  type LayerItem,
  type LayerWalk,
} from "./walk";

export type ChangeKind = "A" | "C" | "D";

export interface Change {
  kind: ChangeKind;
  /** Byte string, "/a/b". */
  path: string;
}

export interface DiffOptions {
  /** Globs of paths to leave out (see exclude.ts). */
  exclude?: readonly string[];
  /** Also list the container engine's mount points. */
  all?: boolean;
}

/** podman's `initInodes` (libpod/diff.go), by the shape an engine gives each in a rw layer. */
const ENGINE_DIRS = ["/dev", "/proc", "/sys", "/run", "/run/secrets", "/run/notify"];
const ENGINE_FILES = [
  "/etc/hosts",
  "/etc/hostname",
  "/etc/resolv.conf",
  "/run/.containerenv",
  "/run/podman-init",
];
const MTAB = "/etc/mtab";

/** The engine mount points among `items` (a walk of `layer`). */
export function engineMountPoints(layer: Layer, items: readonly LayerItem[]): Set<string> {
  const byPath = new Map<string, EntryItem>();
  for (const item of items) if (item.kind === "entry") byPath.set(item.path, item);
  const hidden = new Set<string>();
  for (const path of ENGINE_FILES) {
    const st = byPath.get(path)?.st;
    if (st && typeOf(st) === S_IFREG && st.size === 0n) hidden.add(path);
  }
  const mtab = byPath.get(MTAB)?.st;
  if (mtab && typeOf(mtab) === S_IFLNK) {
    const target = layer.readlink(MTAB);
    if (/(^|\/)proc\/(self\/)?mounts$/.test(target)) hidden.add(MTAB);
  }
  // Deepest first, so /run counts /run/secrets as hidden when it looks at what it holds.
  for (const path of [...ENGINE_DIRS].sort((a, b) => b.length - a.length)) {
    const st = byPath.get(path)?.st;
    if (!st || typeOf(st) !== S_IFDIR) continue;
    const below = items.filter((i) => i.path.startsWith(`${path}/`));
    if (below.every((i) => i.kind === "entry" && hidden.has(i.path))) hidden.add(path);
  }
  return hidden;
}

/** What a diff compares against: the lowers' merged view. */
class LowerView {
  private readonly layers: Layer[];
  private readonly resolver: Resolver;

  constructor(lowers: readonly string[]) {
    this.layers = lowers.map((l, i) => openLayerDir(layerDir(l, "lower layer"), i));
    this.resolver = new Resolver(this.layers);
  }

  has(path: string): boolean {
    return this.resolver.resolve(path) !== undefined;
  }

  /** Names in directory `path` of the merged view ([] when it is not a directory there). */
  names(path: string): string[] {
    const dirLayers = this.resolver.dirLayersOf(path);
    if (!dirLayers) return [];
    return mergedListing(this.layers, dirLayers, path === "/" ? "" : path).map((e) => e.name);
  }

  close(): void {
    this.resolver.close();
    for (const layer of this.layers) layer.close();
  }
}

/**
 * The changes the layer at `upper` makes (UTF-8 text paths), judged against `lowers` (top first) when
 * given. Throws UsageError when a directory is missing.
 */
export function diffLayer(upper: string, lowers?: readonly string[], opts: DiffOptions = {}): Change[] {
  const up = layerDir(upper, "layer");
  const view = lowers && lowers.length > 0 ? new LowerView(lowers) : undefined;
  const walk = walkLayer(up);
  try {
    return changesOf(walk, view, opts);
  } finally {
    walk.layer.close();
    view?.close();
  }
}

function changesOf(walk: LayerWalk, view: LowerView | undefined, opts: DiffOptions): Change[] {
  const excluded = excluder(opts.exclude);
  const engine = opts.all ? new Set<string>() : engineMountPoints(walk.layer, walk.items);
  const provided = new Set(walk.items.filter((i) => i.kind === "entry").map((i) => i.path));
  const byPath = new Map<string, ChangeKind>();
  /** D for what the lowers hold in the opaque directory `dir` and the layer does not provide. */
  const deletedBelow = (dir: string): void => {
    for (const name of view?.names(dir) ?? []) {
      const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
      if (!provided.has(path) && !excluded(path)) byPath.set(path, "D");
    }
  };
  if (walk.rootOpaque) deletedBelow("/");
  for (const item of walk.items) {
    if (excluded(item.path) || engine.has(item.path)) continue;
    if (item.kind === "whiteout") {
      if (!byPath.has(item.path) && !provided.has(item.path)) byPath.set(item.path, "D");
      continue;
    }
    byPath.set(item.path, view?.has(item.path) ? "C" : "A");
    if (item.opaque) deletedBelow(item.path);
  }
  return [...byPath.entries()]
    .map(([path, kind]) => ({ kind, path }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** One line per change: `A /path`. */
export function formatChanges(changes: readonly Change[]): string {
  return changes.map((c) => `${c.kind} ${showPath(c.path)}\n`).join("");
}
