/**
 * What one whiteout format is: how a layer says "this name is deleted" and "hide everything below this
 * directory", and, for formats a mount may choose, how to say it. registry.ts combines the formats.
 *
 * Invariants:
 * - A format only reads through the `Layer` interface and only writes through `WritableLayer`, by
 *   layer-relative paths.
 * - A write method either does its whole job or throws: `Unsupported` (before changing anything) when
 *   the filesystem or the name cannot take this format, so that the registry tries the next one; any
 *   other error is the caller's.
 * - A `DirView` reads each extended attribute of its directory at most once, however many formats ask.
 */
import { codeOf } from "../errors";
import type { Layer, RawEntry, Scratch, Stat, WritableLayer } from "../layer";

/** Deletes an upper entry: a rename into the work dir, then a recursive delete there. */
export function discard(upper: WritableLayer, rel: string, work: Scratch): void {
  const tmp = work.temp();
  work.layer.moveFrom(upper, rel, tmp);
  work.layer.removeTree(tmp);
}

/** A directory's listing, as far as the formats need it: whether it has a name. */
export interface Listing {
  has(name: string): boolean;
}

/**
 * A directory of a layer as the formats look at it; its extended attributes are read once, and its
 * entries looked up in its listing when the caller holds one (a read-only layer's cache), else lstat'ed.
 */
export class DirView {
  private names: readonly string[] | undefined;
  private readonly values = new Map<string, string | undefined>();

  constructor(
    readonly layer: Layer,
    readonly rel: string,
    private readonly listing?: () => Listing | undefined,
  ) {}

  /** Whether the directory has an entry `name`. */
  hasEntry(name: string): boolean {
    const names = this.listing?.();
    return names !== undefined ? names.has(name) : this.layer.tryLstat(`${this.rel}/${name}`) !== undefined;
  }

  /** The value of the directory's xattr `name` as text; undefined when it has none. */
  xattr(name: string): string | undefined {
    this.names ??= xattrNames(this.layer, this.rel);
    if (!this.names.includes(name)) return undefined;
    if (!this.values.has(name))
      this.values.set(name, this.layer.tryGetxattr(this.rel, name)?.toString("latin1"));
    return this.values.get(name);
  }
}

/** The names of `rel`'s xattrs; none where the layer has no xattrs or `rel` is gone. */
function xattrNames(layer: Layer, rel: string): string[] {
  try {
    return layer.listxattr(rel);
  } catch (err) {
    if (codeOf(err) === "EOPNOTSUPP" || codeOf(err) === "ENOENT") return [];
    throw err;
  }
}

/** Thrown by a write method that cannot write its format here; `cause` is why. */
export class Unsupported extends Error {
  constructor(override readonly cause: unknown) {
    super("whiteout format not supported here");
  }
}

/** Writing one format into a writable layer (see the module invariants on `Unsupported`). */
export interface FormatWriter {
  /** Whites out `name` in directory `dir`, where there is no entry of that name; returns the marker's name. */
  whiteOut(upper: WritableLayer, dir: string, name: string): string;
  /** Replaces the entry `name` of `dir` with a whiteout (the entry goes through the work dir `work`). */
  replace(upper: WritableLayer, dir: string, name: string, work: Scratch): void;
  /** Renames entry `name` of `dir` to `to`, leaving `name` whited out. */
  renameWithWhiteout(upper: WritableLayer, dir: string, name: string, to: string): void;
  /** Marks directory `dir` opaque. Idempotent. */
  makeOpaque(layer: WritableLayer, dir: string): void;
}

export interface Format {
  /** The format's name (`whiteout=` for those a mount may choose). */
  readonly name: string;
  /** Whether `name` belongs to the format: never shown, never made through the union. */
  reserves?(name: string): boolean;
  /** The separate entry that whites out `name` in its directory, for formats with such markers. */
  markerOf?(name: string): string | undefined;
  /** The name that `entry` of a listing whites out, when it is one of this format's markers. */
  hiddenBy?(entry: RawEntry): string | undefined;
  /** Whether an entry of S_IFMT `type` in `dir` may be a whiteout itself (then it is lstat'ed). */
  mayBeWhiteoutEntry?(type: number, dir: DirView): boolean;
  /** Whether the object `st` at `rel`, in directory `dir`, is a whiteout itself. */
  isWhiteoutEntry?(st: Stat, rel: string, dir: DirView): boolean;
  isOpaque(dir: DirView): boolean;
  /** For formats a mount may choose. */
  readonly writer?: FormatWriter;
}
