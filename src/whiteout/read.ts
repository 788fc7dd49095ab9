/**
 * Reading whiteouts and opaque markers, in every format, from any layer that honours them.
 *
 * Formats recognised:
 * - aufs / OCI: an entry `.wh.<name>` hides `<name>`; a `.wh..wh..opq` entry makes its directory opaque.
 * - overlay: a character device 0/0 named `<name>` hides it; a directory whose `trusted.overlay.opaque`
 *   (or `user.overlay.opaque`, `user.fuseoverlayfs.opaque`) is "y" is opaque; a directory marked "x"
 *   may hold zero-size files carrying a `*.overlay.whiteout` xattr, each hiding its own name.
 *
 * Invariant: names starting with `.wh.` belong to the formats (and the default work dir) and are never
 * part of the union's view.
 */
import type { Stat } from "../sys/stat";
import { codeOf } from "../errors";
import type { Layer, RawEntry } from "../layer";

export const WH_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";
/** Default work dir name inside the writable branch (hidden like every `.wh.` name). */
export const WORKDIR_NAME = ".wh..wh.unionfs";

const OPAQUE_XATTRS = ["trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"];
const WHITEOUT_XATTRS = ["trusted.overlay.whiteout", "user.overlay.whiteout"];
const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;
const S_IFREG = 0o100000;

/** True for names that belong to the whiteout formats and are never part of the union's view. */
export function isReservedName(name: string): boolean {
  return name.startsWith(WH_PREFIX);
}

/** Overlay-format whiteout: a character device with device number 0/0. */
export function isOverlayWhiteout(st: Stat): boolean {
  return (Number(st.mode) & S_IFMT) === S_IFCHR && st.rdev === 0n;
}

/** NAME_MAX: an aufs whiteout for a name longer than this minus 4 cannot exist. */
export const NAME_MAX = 255;

/** Whether `.wh.<name>` fits in NAME_MAX bytes (names are byte strings: length = bytes). */
export function aufsWhiteoutFits(name: string): boolean {
  return WH_PREFIX.length + name.length <= NAME_MAX;
}

/** Does `layer` hold an aufs whiteout for `name` in directory `dirRel`? */
export function hasAufsWhiteout(layer: Layer, dirRel: string, name: string): boolean {
  return aufsWhiteoutFits(name) && layer.tryLstat(`${dirRel}/${WH_PREFIX}${name}`) !== undefined;
}

/** The overlay opaque xattr value of a directory ("y", "x", …), or undefined. */
export function opaqueValue(layer: Layer, dirRel: string): string | undefined {
  let names: string[];
  try {
    names = layer.listxattr(dirRel);
  } catch (err) {
    if (codeOf(err) === "EOPNOTSUPP" || codeOf(err) === "ENOENT") return undefined;
    throw err;
  }
  const name = OPAQUE_XATTRS.find((n) => names.includes(n));
  return name === undefined ? undefined : xattrText(layer, dirRel, name);
}

function xattrText(layer: Layer, rel: string, name: string): string | undefined {
  try {
    return layer.getxattr(rel, name).toString("latin1");
  } catch (err) {
    if (codeOf(err) === "ENODATA") return undefined;
    throw err;
  }
}

/** Is directory `dirRel` of `layer` opaque (hides every lower layer's entries)? */
export function isOpaque(layer: Layer, dirRel: string): boolean {
  if (!layer.honoursWhiteouts) return false;
  if (layer.tryLstat(`${dirRel}/${OPAQUE_MARKER}`) !== undefined) return true;
  return opaqueValue(layer, dirRel) === "y";
}

/** Is the entry `st` at `rel` (in directory `dirRel`) a whiteout by itself (overlay formats)? */
export function isWhiteoutEntry(layer: Layer, dirRel: string, rel: string, st: Stat): boolean {
  if (!layer.honoursWhiteouts) return false;
  if (isOverlayWhiteout(st)) return true;
  if ((Number(st.mode) & S_IFMT) !== S_IFREG || st.size !== 0n) return false;
  return opaqueValue(layer, dirRel) === "x" && hasWhiteoutXattr(layer, rel);
}

function hasWhiteoutXattr(layer: Layer, rel: string): boolean {
  try {
    const names = layer.listxattr(rel);
    return WHITEOUT_XATTRS.some((n) => names.includes(n));
  } catch {
    return false;
  }
}

/**
 * From one layer's raw listing: the names it whites out, in every format. `self` holds the names whose
 * entry is itself a whiteout (overlay formats): those entries are not shown either.
 */
export function whiteoutsInListing(
  layer: Layer,
  dirRel: string,
  entries: RawEntry[],
): { names: Set<string>; self: Set<string> } {
  const out = new Set<string>();
  const self = new Set<string>();
  if (!layer.honoursWhiteouts) return { names: out, self };
  const xwhiteouts = entries.some((e) => e.type === S_IFREG) && opaqueValue(layer, dirRel) === "x";
  for (const e of entries) {
    if (e.name.startsWith(WH_PREFIX)) {
      if (e.name !== OPAQUE_MARKER && !e.name.startsWith(`${WH_PREFIX}${WH_PREFIX}`)) {
        out.add(e.name.slice(WH_PREFIX.length));
      }
    } else if (e.type === S_IFCHR || (xwhiteouts && e.type === S_IFREG)) {
      const rel = `${dirRel}/${e.name}`;
      const st = layer.tryLstat(rel);
      if (st && isWhiteoutEntry(layer, dirRel, rel, st)) {
        out.add(e.name);
        self.add(e.name);
      }
    }
  }
  return { names: out, self };
}
