/**
 * `diff`: what a layer changes, one line per path, like `docker diff` (A added, M modified, D deleted)
 * plus O for an opaque directory (its lower contents are hidden).
 *
 * Invariants:
 * - M needs the lower layers: a path is M when the merged view of the lowers (whiteouts and opaque
 *   directories honoured, exactly as the union resolves it) has something there; without lowers every
 *   path the layer provides is A.
 * - A path the layer both provides and whites out is reported once, as provided (A/M/O).
 * - Lines are sorted by path bytes; paths print through `showPath`, so each line stays one line of text.
 */
import { Resolver } from "../unionfs/resolve";
import { layerDir, openLayer, showPath, typeOf, walkLayer, S_IFDIR } from "./walk";

export type ChangeKind = "A" | "M" | "D" | "O";

export interface Change {
  kind: ChangeKind;
  /** Byte string, "/a/b"; "/" only for an opaque root. */
  path: string;
}

/**
 * The changes the layer at `upper` makes (UTF-8 text paths), judged against `lowers` (top first) when
 * given. Throws UsageError when a directory is missing.
 */
export function diffLayer(upper: string, lowers?: readonly string[]): Change[] {
  const up = layerDir(upper, "layer");
  const resolver =
    lowers && lowers.length > 0
      ? new Resolver(lowers.map((l, i) => openLayer(layerDir(l, "lower layer"), i)))
      : undefined;
  const walk = walkLayer(up);
  const byPath = new Map<string, ChangeKind>();
  if (walk.rootOpaque) byPath.set("/", "O");
  for (const item of walk.items) {
    if (item.kind === "whiteout") {
      if (!byPath.has(item.path)) byPath.set(item.path, "D");
      continue;
    }
    if (typeOf(item.st) === S_IFDIR && item.opaque) byPath.set(item.path, "O");
    else byPath.set(item.path, resolver?.resolve(item.path) ? "M" : "A");
  }
  return [...byPath.entries()]
    .map(([path, kind]) => ({ kind, path }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** One line per change: `A /path`. */
export function formatChanges(changes: readonly Change[]): string {
  return changes.map((c) => `${c.kind} ${showPath(c.path)}\n`).join("");
}
