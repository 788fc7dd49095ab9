/**
 * Reading one layer (a plain directory) as a list of changes: what it adds or replaces, what it whites
 * out, which of its directories are opaque. `diff` and `export` are both built on this walk.
 *
 * Invariants:
 * - Every whiteout format `src/whiteout` recognises is reported the same way (a `whiteout` item
 *   for the hidden name); the markers themselves (`.wh.<name>`, `.wh..wh..opq`, 0/0 character devices,
 *   overlay.whiteout files) are never reported as entries.
 * - Every other `.wh.` name is skipped with its subtree: the union's work dir `.wh..wh.unionfs/`, aufs
 *   bookkeeping (`.wh..wh.plnk`, …).
 * - Order is deterministic and tar-friendly: depth first; in each directory, the whiteouts (by name),
 *   then the entries (by name), each directory's own item before its contents. Names compare as bytes.
 * - Paths are byte strings (`src/sys/bytes.ts`): "/a/b" below the layer root, "/" for the root itself.
 * - Only reads the disk.
 */
import type { Stat } from "../sys/stat";
import * as fs from "node:fs";
import { openReadOnly, type Layer } from "../layer";
import { fromText } from "../sys/bytes";
import { UsageError } from "../errors";
import { OPAQUE_MARKER, WH_PREFIX, isOpaque, isReservedName, whiteoutsIn } from "../whiteout";

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** An object the layer provides at `path` (new, or replacing whatever lower layers have there). */
export interface EntryItem {
  kind: "entry";
  path: string;
  st: Stat;
  /** Directories only: the layer hides everything lower layers have below `path`. */
  opaque: boolean;
}

/** The layer deletes `path`. `marker` is the stat of the object that says so (its owner, mode, time). */
export interface WhiteoutItem {
  kind: "whiteout";
  path: string;
  marker: Stat;
}

export type LayerItem = EntryItem | WhiteoutItem;

export interface LayerWalk {
  /** The layer, for reading the objects the items name. */
  layer: Layer;
  /** Whether the root directory itself is opaque. */
  rootOpaque: boolean;
  rootStat: Stat;
  items: LayerItem[];
}

export function typeOf(st: Stat): number {
  return Number(st.mode) & S_IFMT;
}

/** Byte-order comparison of byte strings (one char per byte, so code units are bytes). */
export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A directory given on the command line, checked: one clear line when it is missing or not a directory. */
export function layerDir(dir: string, what: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new UsageError(`${what} '${dir}' does not exist`);
  }
  if (!st.isDirectory()) throw new UsageError(`${what} '${dir}' is not a directory`);
  return fs.realpathSync(dir);
}

/** A read-only view of the directory `dir` (UTF-8 text path) that honours whiteouts. */
export function openLayerDir(dir: string, index = 0): Layer {
  return openReadOnly(fromText(dir), index);
}

/** Walks the layer at `dir` (UTF-8 text path, an existing directory); the caller closes `walk.layer`. */
export function walkLayer(dir: string): LayerWalk {
  const layer = openLayerDir(dir);
  const items: LayerItem[] = [];
  const visit = (dirRel: string): void => {
    const entries = layer.readdir(dirRel);
    const whiteouts = whiteoutsIn(layer, dirRel, entries);
    for (const name of [...whiteouts.keys()].sort(byteOrder)) {
      const marker = layer.tryLstat(`${dirRel}/${whiteouts.get(name) as string}`);
      if (marker) items.push({ kind: "whiteout", path: `${dirRel}/${name}`, marker });
    }
    const kept = entries
      .map((e) => e.name)
      .filter((n) => !isReservedName(n) && whiteouts.get(n) !== n)
      .sort(byteOrder);
    for (const name of kept) {
      const rel = `${dirRel}/${name}`;
      const st = layer.tryLstat(rel);
      if (!st) continue; // gone since the listing
      const isDir = typeOf(st) === S_IFDIR;
      items.push({ kind: "entry", path: rel, st, opaque: isDir && isOpaque(layer, rel) });
      if (isDir) visit(rel);
    }
  };
  const rootStat = layer.lstat("");
  const rootOpaque = isOpaque(layer, "");
  visit("");
  return { layer, rootOpaque, rootStat, items };
}

/** Name of the aufs/OCI marker for a whiteout of `path` ("/a/b" → "/a/.wh.b"). */
export function whiteoutMarkerPath(path: string): string {
  const i = path.lastIndexOf("/");
  return `${path.slice(0, i + 1)}${WH_PREFIX}${path.slice(i + 1)}`;
}

/** Path of the opaque marker inside directory `path` ("/" → "/.wh..wh..opq"). */
export function opaqueMarkerPath(path: string): string {
  return path === "/" ? `/${OPAQUE_MARKER}` : `${path}/${OPAQUE_MARKER}`;
}

/**
 * Text of a byte-string path for one line of output: valid UTF-8 is kept, every other byte, control
 * characters and DEL become `\xNN`, and a backslash becomes `\\`, so the text is unambiguous.
 */
export function showPath(path: string): string {
  const bytes = Buffer.from(path, "latin1");
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      if (b < 0x20 || b === 0x7f) out += hex(b);
      else if (b === 0x5c) out += "\\\\";
      else out += String.fromCharCode(b);
      i += 1;
      continue;
    }
    const len = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    const seq = len === 0 ? undefined : bytes.subarray(i, i + len);
    const text = seq && seq.length === len ? seq.toString("utf8") : undefined;
    if (seq && text !== undefined && Buffer.from(text, "utf8").equals(seq)) {
      out += text;
      i += len;
    } else {
      out += hex(b);
      i += 1;
    }
  }
  return out;
}

function hex(b: number): string {
  return `\\x${b.toString(16).padStart(2, "0")}`;
}
