/**
 * `--exclude GLOB`: paths of a layer to leave out of `export` and `diff`, matched with picomatch (the
 * matcher of the fast-glob family).
 *
 * Invariants:
 * - A glob is matched against a path from the layer root, without the leading `/` (which a glob may have
 *   or not: `/var/cache` and `var/cache` are the same); `*` stays within one component, `**` crosses
 *   them, and dot names match like any other (so `**\/.git` works).
 * - A path is excluded when a glob matches it or any directory above it: leaving out a directory leaves
 *   out all it holds, whiteouts and opaque markers included.
 * - Paths are byte strings; they are matched as their UTF-8 text.
 */
import picomatch from "picomatch";
import { toText } from "../sys/bytes";
import { UsageError } from "../errors";

/** True for a byte-string layer path ("/a/b") that is to be left out. */
export type Excluded = (path: string) => boolean;

/** The filter for `globs` (none: nothing is excluded). Throws UsageError for an empty glob. */
export function excluder(globs: readonly string[] = []): Excluded {
  if (globs.length === 0) return () => false;
  const patterns = globs.map((g) => {
    const p = g.replace(/^(\.?\/)+/, "").replace(/\/+$/, "");
    if (p === "") throw new UsageError(`--exclude '${g}' matches nothing (an empty glob)`);
    return p;
  });
  const match = picomatch(patterns, { dot: true });
  return (path: string) => {
    const parts = toText(path)
      .split("/")
      .filter((c) => c !== "");
    for (let i = 1; i <= parts.length; i++) if (match(parts.slice(0, i).join("/"))) return true;
    return false;
  };
}
