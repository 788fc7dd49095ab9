/**
 * Writing deletions and opaque markers into the writable layer, in the format the mount asked for.
 *
 * Invariants:
 * - `remove` leaves the name whited out and the upper entry (if any) gone. Where the filesystem allows
 *   it is one atomic step (overlay: renameat2 RENAME_WHITEOUT); otherwise the whiteout is written
 *   before the entry is removed, so a crash shows the old view, never a resurrected lower object.
 * - Removed upper entries are first renamed into the work dir, then deleted there, so a directory full
 *   of markers disappears from the union at once.
 * - Overlay format falls back to aufs `.wh.` files where character devices cannot be made. Its opaque
 *   marker goes in the xattr namespace the mount chose (`trusted.overlay.opaque`, or
 *   `user.overlay.opaque` when unprivileged: sys/xattrns.ts), else it is a `.wh..wh..opq` file.
 * - Everything goes through the writable layer's interface, by layer-relative paths.
 */
import * as fs from "node:fs";
import { codeOf } from "../errors";
import type { Scratch, WritableLayer } from "../layer";
import type { XattrNamespace } from "../sys/xattrns";
import { aufsWhiteoutFits, OPAQUE_MARKER, WH_PREFIX } from "./read";

export type WhiteoutFormat = "aufs" | "overlay";

const S_IFCHR = 0o020000;
const RENAME_WHITEOUT = 4;

export interface WhiteoutWriter {
  readonly format: WhiteoutFormat;
  /** Whites out `name` in directory `dir` of `upper`, removing the upper entry if `hasEntry`. */
  remove(upper: WritableLayer, dir: string, name: string, hasEntry: boolean, work: Scratch): void;
  /** Renames `dir/name` of `upper` to `to`, leaving `dir/name` whited out. */
  renameWithWhiteout(upper: WritableLayer, dir: string, name: string, to: string, work: Scratch): void;
  /** Marks directory `dir` of `layer` opaque. Idempotent. */
  makeOpaque(layer: WritableLayer, dir: string): void;
}

/** Deletes an upper entry: a rename into the work dir, then a recursive delete there. */
export function discard(upper: WritableLayer, rel: string, work: Scratch): void {
  const tmp = work.temp();
  work.layer.moveFrom(upper, rel, tmp);
  work.layer.removeTree(tmp);
}

/** Removes an aufs whiteout `.wh.<name>` from `dir` of `upper` if there is one. */
export function dropAufsWhiteout(upper: WritableLayer, dir: string, name: string): void {
  if (!aufsWhiteoutFits(name)) return;
  const wh = `${dir}/${WH_PREFIX}${name}`;
  if (upper.tryLstat(wh) !== undefined) upper.unlink(wh);
}

function touch(layer: WritableLayer, rel: string): void {
  layer.create(rel, fs.constants.O_WRONLY, 0o444).close();
}

/**
 * aufs format. A name of 252–255 bytes has no room for the `.wh.` prefix: its whiteout is written in
 * overlay format instead (both formats are read everywhere).
 */
export const aufsWriter: WhiteoutWriter = {
  format: "aufs",
  remove(upper, dir, name, hasEntry, work) {
    if (!aufsWhiteoutFits(name)) return overlayWriter.remove(upper, dir, name, hasEntry, work);
    touch(upper, `${dir}/${WH_PREFIX}${name}`);
    if (hasEntry) discard(upper, `${dir}/${name}`, work);
  },
  renameWithWhiteout(upper, dir, name, to, work) {
    if (!aufsWhiteoutFits(name)) return overlayWriter.renameWithWhiteout(upper, dir, name, to, work);
    touch(upper, `${dir}/${WH_PREFIX}${name}`);
    upper.rename(`${dir}/${name}`, to);
  },
  makeOpaque(layer, dir) {
    touch(layer, `${dir}/${OPAQUE_MARKER}`);
  },
};

/** Errors meaning "this filesystem cannot do that": take the fallback path. */
function unsupported(err: unknown): boolean {
  const code = codeOf(err);
  return code === "EINVAL" || code === "EOPNOTSUPP" || code === "ENOSYS" || code === "EPERM";
}

/** Overlay format, its opaque marker in the xattr namespace `ns`. */
export function overlayWriterFor(ns: XattrNamespace): WhiteoutWriter {
  const opaqueXattr = `${ns}.overlay.opaque`;
  return {
    format: "overlay",
    remove(upper, dir, name, hasEntry, work) {
      const target = `${dir}/${name}`;
      if (!hasEntry) {
        try {
          upper.mknod(target, S_IFCHR, 0);
        } catch (err) {
          if (!unsupported(err)) throw err;
          touch(upper, `${dir}/${WH_PREFIX}${name}`);
        }
        return;
      }
      const tmp = work.temp();
      try {
        work.layer.moveFrom(upper, target, tmp, RENAME_WHITEOUT);
      } catch (err) {
        if (!unsupported(err)) throw err;
        aufsWriter.remove(upper, dir, name, hasEntry, work);
        return;
      }
      work.layer.removeTree(tmp);
    },
    renameWithWhiteout(upper, dir, name, to, work) {
      try {
        upper.rename(`${dir}/${name}`, to, RENAME_WHITEOUT);
      } catch (err) {
        if (!unsupported(err)) throw err;
        aufsWriter.renameWithWhiteout(upper, dir, name, to, work);
      }
    },
    makeOpaque(layer, dir) {
      try {
        layer.setxattr(dir, opaqueXattr, Buffer.from("y"), 0);
      } catch (err) {
        if (!unsupported(err)) throw err;
        touch(layer, `${dir}/${OPAQUE_MARKER}`);
      }
    },
  };
}

export const overlayWriter = overlayWriterFor("trusted");

/** The writer of `format`, overlay markers in the xattr namespace `ns`. */
export function whiteoutWriter(format: WhiteoutFormat, ns: XattrNamespace): WhiteoutWriter {
  return format === "overlay" ? overlayWriterFor(ns) : aufsWriter;
}
