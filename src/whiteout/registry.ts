/**
 * The whiteout formats a union knows: every one is read in every layer that honours whiteouts; new
 * whiteouts and opaque markers are written in the one a mount chose (falling back to the others where
 * the filesystem or a name cannot take it). A new format is one file (a `Format`, format.ts) plus a line
 * here.
 *
 * Invariants:
 * - Reading: a name is hidden by a marker entry of any format, or its entry is a whiteout of any
 *   format; a directory is opaque when any format says so. A layer that does not honour whiteouts
 *   (aufs `rr`) has none.
 * - Names a format reserves (`.wh.*`) are never part of the union's view, whatever the chosen format.
 * - Writing never leaves a half-written whiteout: a format that cannot write throws `Unsupported` before
 *   changing anything, and the next format is tried; the last one's error is thrown.
 */
import type { Layer, RawEntry, Scratch, Stat, WritableLayer } from "../layer";
import type { XattrNamespace } from "../sys/xattrns";
import { aufs } from "./aufs";
import { DirView, Unsupported, type Format, type FormatWriter, type Listing } from "./format";

export { discard } from "./format";
import { overlayFormat } from "./overlay";

const overlay = overlayFormat("overlay", "trusted.overlay.");
/** Overlay with its markers in `user.` xattrs (rootless overlayfs, `userxattr`). */
const userOverlay = overlayFormat("overlay", "user.overlay.");

/** Every format, read everywhere; aufs first (its marker is the cheapest to look for). */
const FORMATS: readonly Format[] = [
  aufs,
  overlay,
  userOverlay,
  overlayFormat("user.fuseoverlayfs", "user.fuseoverlayfs."),
];

/**
 * The formats a mount may choose to write (`whiteout=`), the default first, each as written in the
 * xattr namespace the mount's private markers go in (sys/xattrns.ts).
 */
const WRITABLE = {
  aufs: (): Format => aufs,
  overlay: (ns: XattrNamespace): Format => (ns === "user" ? userOverlay : overlay),
} as const;

/** The name of a format a mount may write. */
export type WhiteoutFormat = keyof typeof WRITABLE;
export const WHITEOUT_FORMATS = Object.keys(WRITABLE) as WhiteoutFormat[];

export function isWhiteoutFormat(name: string): name is WhiteoutFormat {
  return Object.prototype.hasOwnProperty.call(WRITABLE, name);
}

const RESERVING = FORMATS.filter((f) => f.reserves !== undefined);
const MARKING = FORMATS.filter((f) => f.markerOf !== undefined);

/** True for names that belong to a whiteout format and are never part of the union's view. */
export function isReservedName(name: string): boolean {
  return RESERVING.some((f) => f.reserves?.(name) === true);
}

/** The marker entries that would white `name` out (aufs: `.wh.NAME`), one per format that has one. */
export function markersOf(name: string): string[] {
  const out: string[] = [];
  for (const f of MARKING) {
    const marker = f.markerOf?.(name);
    if (marker !== undefined) out.push(marker);
  }
  return out;
}

/**
 * Whether `layer`, which has no entry of some name in directory `dir`, whites it out with one of
 * `markers` (`markersOf(name)`: made once for every layer a lookup visits). `names`: the directory's
 * listing, when known (then nothing is looked up).
 */
export function hidesName(layer: Layer, dir: string, markers: readonly string[], names?: Listing): boolean {
  if (!layer.honoursWhiteouts) return false;
  for (const marker of markers) {
    if (names !== undefined ? names.has(marker) : layer.tryLstat(`${dir}/${marker}`) !== undefined)
      return true;
  }
  return false;
}

/** Whether the object `st` at `rel` (in directory `dir` of `layer`) is itself a whiteout. */
export function isWhiteoutEntry(layer: Layer, dir: string, rel: string, st: Stat): boolean {
  return layer.honoursWhiteouts && entryIsWhiteout(st, rel, new DirView(layer, dir));
}

function entryIsWhiteout(st: Stat, rel: string, view: DirView): boolean {
  return FORMATS.some((f) => f.isWhiteoutEntry?.(st, rel, view) === true);
}

/**
 * Is directory `dir` of `layer` opaque (hides every lower layer's entries)? `listing`: the directory's
 * entries, when the caller can have them cheaply (a read-only layer's cached listing), so that a marker
 * entry is looked up there instead of lstat'ed (cold, that is a disk read for a negative lookup).
 */
export function isOpaque(layer: Layer, dir: string, listing?: () => Listing | undefined): boolean {
  if (!layer.honoursWhiteouts) return false;
  const view = new DirView(layer, dir, listing);
  return FORMATS.some((f) => f.isOpaque(view));
}

/**
 * From one layer's listing of directory `dir`: each name it whites out, with the name of the entry
 * that says so (the name itself when the entry is a whiteout by itself: not shown either).
 */
export function whiteoutsIn(layer: Layer, dir: string, entries: readonly RawEntry[]): Map<string, string> {
  const out = new Map<string, string>();
  if (!layer.honoursWhiteouts) return out;
  const view = new DirView(layer, dir);
  for (const e of entries) {
    const hidden = hiddenBy(e);
    if (hidden !== undefined) out.set(hidden, e.name);
    else if (!isReservedName(e.name) && FORMATS.some((f) => f.mayBeWhiteoutEntry?.(e.type, view) === true)) {
      const rel = `${dir}/${e.name}`;
      const st = layer.tryLstat(rel);
      if (st !== undefined && entryIsWhiteout(st, rel, view)) out.set(e.name, e.name);
    }
  }
  return out;
}

function hiddenBy(entry: RawEntry): string | undefined {
  for (const f of FORMATS) {
    const hidden = f.hiddenBy?.(entry);
    if (hidden !== undefined) return hidden;
  }
  return undefined;
}

/** Removes every marker entry that whites out `name` in directory `dir` of `upper` (after creating it). */
export function clearWhiteouts(upper: WritableLayer, dir: string, name: string): void {
  for (const marker of markersOf(name)) {
    if (upper.tryLstat(`${dir}/${marker}`) !== undefined) upper.unlink(`${dir}/${marker}`);
  }
}

/** Writing whiteouts and opaque markers in a mount's chosen format. */
export interface WhiteoutWriter {
  readonly format: WhiteoutFormat;
  /**
   * Leaves `name` in directory `dir` whited out and the upper entry (if `hasEntry`) gone: in one atomic
   * step where the format allows (overlay: RENAME_WHITEOUT), else the whiteout first, so a crash shows
   * the old view, never a resurrected lower object. A removed entry is deleted in the work dir `work`.
   */
  remove(upper: WritableLayer, dir: string, name: string, hasEntry: boolean, work: Scratch): void;
  /** Whites out `name` in `dir`, which has no entry of that name; returns the marker entry's name. */
  whiteOut(upper: WritableLayer, dir: string, name: string): string;
  /** Renames entry `name` of `dir` to `to`, leaving `name` whited out. */
  renameWithWhiteout(upper: WritableLayer, dir: string, name: string, to: string): void;
  /** Marks directory `dir` opaque. Idempotent. */
  makeOpaque(layer: WritableLayer, dir: string): void;
}

/**
 * The writer of format `format` (its xattrs in namespace `ns`), falling back to the other writable
 * formats.
 */
export function whiteoutWriter(format: WhiteoutFormat, ns: XattrNamespace = "trusted"): WhiteoutWriter {
  const others = WHITEOUT_FORMATS.filter((f) => f !== format);
  const writers = [format, ...others].map((f) => WRITABLE[f](ns).writer as FormatWriter);
  const first = <T>(fn: (w: FormatWriter) => T): T => {
    let last: unknown;
    for (const w of writers) {
      try {
        return fn(w);
      } catch (err) {
        if (!(err instanceof Unsupported)) throw err;
        last = err.cause;
      }
    }
    throw last;
  };
  return {
    format,
    remove(upper, dir, name, hasEntry, work) {
      if (hasEntry) first((w) => w.replace(upper, dir, name, work));
      else first((w) => w.whiteOut(upper, dir, name));
    },
    whiteOut: (upper, dir, name) => first((w) => w.whiteOut(upper, dir, name)),
    renameWithWhiteout: (upper, dir, name, to) => first((w) => w.renameWithWhiteout(upper, dir, name, to)),
    makeOpaque: (layer, dir) => first((w) => w.makeOpaque(layer, dir)),
  };
}
