/**
 * Whiteouts and opaque markers: how a layer says "this name is deleted" or "hide everything below".
 *
 * Invariants:
 * - Reading recognises every format in every layer that honours whiteouts: aufs/OCI `.wh.<name>` files
 *   and `.wh..wh..opq` markers, and overlay-style character devices 0/0.
 * - Names starting with `.wh.` are never shown and never created through the union (EPERM): they are
 *   the format's own namespace, and the default work dir lives there too.
 * - Writing goes through a `WhiteoutWriter`, so a mount chooses its on-disk format in one place.
 */
import type { BigIntStats } from "node:fs";
import * as fs from "node:fs";
import { isAbsent } from "../errors";
import type { Layer, RawEntry } from "../layer";
import { bytesOf } from "../sys/bytes";

export const WH_PREFIX = ".wh.";
export const OPAQUE_MARKER = ".wh..wh..opq";
/** Default work dir name inside the writable branch (hidden like every `.wh.` name). */
export const WORKDIR_NAME = ".wh..wh.unionfs";

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

/** True for names that belong to the whiteout format and are never part of the union's view. */
export function isReservedName(name: string): boolean {
  return name.startsWith(WH_PREFIX);
}

/** Overlay-format whiteout: a character device with device number 0/0. */
export function isOverlayWhiteout(st: BigIntStats): boolean {
  return (Number(st.mode) & S_IFMT) === S_IFCHR && st.rdev === 0n;
}

/** Does `layer` hold an aufs whiteout for `name` in directory `dirRel`? */
export function hasAufsWhiteout(layer: Layer, dirRel: string, name: string): boolean {
  return layer.tryLstat(`${dirRel}/${WH_PREFIX}${name}`) !== undefined;
}

/** Is directory `dirRel` of `layer` opaque (hides every lower layer's entries)? */
export function isOpaque(layer: Layer, dirRel: string): boolean {
  if (!layer.honoursWhiteouts) return false;
  return layer.tryLstat(`${dirRel}/${OPAQUE_MARKER}`) !== undefined;
}

/** From one layer's raw listing: the names it whites out (aufs `.wh.x` files; 0/0 char devices). */
export function whiteoutsInListing(layer: Layer, dirRel: string, entries: RawEntry[]): Set<string> {
  const out = new Set<string>();
  if (!layer.honoursWhiteouts) return out;
  for (const e of entries) {
    if (e.name.startsWith(WH_PREFIX)) {
      if (e.name !== OPAQUE_MARKER && !e.name.startsWith(`${WH_PREFIX}${WH_PREFIX}`)) {
        out.add(e.name.slice(WH_PREFIX.length));
      }
    } else if (e.type === S_IFCHR) {
      const st = layer.tryLstat(`${dirRel}/${e.name}`);
      if (st && isOverlayWhiteout(st)) out.add(e.name);
    }
  }
  return out;
}

/**
 * Writes whiteouts and opaque markers into the writable layer in one on-disk format.
 * Directories are absolute byte-string paths (the work dir may hold a directory under construction).
 */
export interface WhiteoutWriter {
  readonly format: "aufs" | "overlay";
  /** Records that `name` in `dir` is deleted. Idempotent. */
  write(dir: string, name: string): void;
  /** Removes the record for `name`, if any. Returns whether one existed. */
  remove(dir: string, name: string): boolean;
  /** Marks `dir` opaque. Idempotent. */
  makeOpaque(dir: string): void;
}

/** aufs/OCI format: an empty file `.wh.<name>`; opaque dirs hold an empty `.wh..wh..opq`. */
export const aufsWriter: WhiteoutWriter = {
  format: "aufs",
  write(dir, name) {
    touch(`${dir}/${WH_PREFIX}${name}`);
  },
  remove(dir, name) {
    try {
      fs.unlinkSync(bytesOf(`${dir}/${WH_PREFIX}${name}`));
      return true;
    } catch (err) {
      if (isAbsent(err)) return false;
      throw err;
    }
  },
  makeOpaque(dir) {
    touch(`${dir}/${OPAQUE_MARKER}`);
  },
};

function touch(abs: string): void {
  fs.closeSync(fs.openSync(bytesOf(abs), fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o444));
}
