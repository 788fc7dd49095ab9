/**
 * Names a writable directory layer knows to be missing: a lookup that missed once (the union asks its
 * top layer for every name, and for that name's whiteout, before it looks below) is answered again
 * without a system call.
 *
 * Invariants:
 * - Only the layer's own changes can make a missing name appear (nothing else changes a union's layers
 *   while it is mounted: types.ts), and each of them tells this first: `created(rel)` forgets what is
 *   known of `rel`'s directory; `moved(rel)` (a rename's source or destination: a whole tree may appear
 *   there) also forgets everything known below `rel`. Removals make nothing appear, so they tell nothing.
 * - A path that misses because a component is not a directory (ENOTDIR) is recorded like any other: the
 *   component can only become a directory through `created` or `moved` of it, which forget its names.
 * - Bounded: at most MAX_DIRS directories (the oldest recorded is dropped first), at most MAX_NAMES names
 *   in one (then that directory's names are dropped).
 */

const MAX_DIRS = 4096;
const MAX_NAMES = 1024;

/** `rel` ("/a/b") split into its directory ("/a"; "" for the root) and its name; undefined for the root. */
function split(rel: string): [string, string] | undefined {
  const slash = rel.lastIndexOf("/");
  if (slash < 0 || slash === rel.length - 1) return undefined;
  return [rel.slice(0, slash), rel.slice(slash + 1)];
}

export class AbsentNames {
  private readonly dirs = new Map<string, Set<string>>();

  has(rel: string): boolean {
    const at = split(rel);
    return at !== undefined && this.dirs.get(at[0])?.has(at[1]) === true;
  }

  add(rel: string): void {
    const at = split(rel);
    if (at === undefined) return;
    let names = this.dirs.get(at[0]);
    if (names === undefined) {
      if (this.dirs.size >= MAX_DIRS) this.dirs.delete(this.dirs.keys().next().value as string);
      this.dirs.set(at[0], (names = new Set()));
    } else if (names.size >= MAX_NAMES) names.clear();
    names.add(at[1]);
  }

  /** `rel` is about to be made: nothing is known of its directory any more. */
  created(rel: string): void {
    const at = split(rel);
    if (at !== undefined) this.dirs.delete(at[0]);
  }

  /** A tree is about to appear at `rel`: nothing is known of its directory, nor of anything below it. */
  moved(rel: string): void {
    this.created(rel);
    const below = `${rel}/`;
    for (const dir of this.dirs.keys()) if (dir === rel || dir.startsWith(below)) this.dirs.delete(dir);
  }
}
