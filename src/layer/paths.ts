/**
 * Union paths and layer-relative paths. A union path is absolute ("/", "/a/b"); the same object's path
 * in a layer is "" for the root and the union path itself below it (every layer mirrors the union's
 * tree). Both are byte strings.
 */

/** Layer-relative path of a union path: "" for the root, the path itself otherwise. */
export function relOf(path: string): string {
  return path === "/" ? "" : path;
}

/** Splits "/a/b" into ["/a", "b"]; the parent of a top-level name is "/". */
export function splitPath(path: string): [string, string] {
  const i = path.lastIndexOf("/");
  return [i <= 0 ? "/" : path.slice(0, i), path.slice(i + 1)];
}
