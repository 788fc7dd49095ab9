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
 * - Paths given here are short enough to append one name to (`Layer.withPath` gives such paths, also for
 *   objects deeper than PATH_MAX); nothing here joins more than one component onto them.
 */
import * as fs from "node:fs";
import { codeOf } from "../errors";
import { bytesOf } from "../sys/bytes";
import * as sys from "../sys/libc";
import type { XattrNamespace } from "../sys/xattrns";
import { aufsWhiteoutFits, OPAQUE_MARKER, WH_PREFIX } from "./read";

export type WhiteoutFormat = "aufs" | "overlay";

const S_IFCHR = 0o020000;
const RENAME_WHITEOUT = 4;

/** Where removed entries go to die: a fresh path in the work dir per call. */
export type TempPath = () => string;

export interface WhiteoutWriter {
  readonly format: WhiteoutFormat;
  /** Whites out `name` in the upper directory `dir` (absolute), removing the upper entry if `hasEntry`. */
  remove(dir: string, name: string, hasEntry: boolean, temp: TempPath): void;
  /** Renames upper `from` to `to` (absolute), leaving `from` whited out. */
  renameWithWhiteout(fromDir: string, fromName: string, to: string, temp: TempPath): void;
  /** Marks the directory `dir` (absolute) opaque. Idempotent. */
  makeOpaque(dir: string): void;
}

/** Deletes an upper entry: a rename into the work dir, then a recursive delete there. */
export function discard(abs: string, temp: TempPath): void {
  const tmp = temp();
  fs.renameSync(bytesOf(abs), bytesOf(tmp));
  fs.rmSync(bytesOf(tmp), { recursive: true, force: true });
}

/** Removes an aufs whiteout `.wh.<name>` from `dir` if there is one (looked for without throwing). */
export function dropAufsWhiteout(dir: string, name: string): void {
  if (!aufsWhiteoutFits(name)) return;
  const wh = bytesOf(`${dir}/${WH_PREFIX}${name}`);
  if (fs.lstatSync(wh, { throwIfNoEntry: false }) !== undefined) fs.unlinkSync(wh);
}

function touch(abs: string): void {
  fs.closeSync(fs.openSync(bytesOf(abs), fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o444));
}

/**
 * aufs format. A name of 252–255 bytes has no room for the `.wh.` prefix: its whiteout is written in
 * overlay format instead (both formats are read everywhere).
 */
export const aufsWriter: WhiteoutWriter = {
  format: "aufs",
  remove(dir, name, hasEntry, temp) {
    if (!aufsWhiteoutFits(name)) return overlayWriter.remove(dir, name, hasEntry, temp);
    touch(`${dir}/${WH_PREFIX}${name}`);
    if (hasEntry) discard(`${dir}/${name}`, temp);
  },
  renameWithWhiteout(fromDir, fromName, to, temp) {
    if (!aufsWhiteoutFits(fromName)) return overlayWriter.renameWithWhiteout(fromDir, fromName, to, temp);
    touch(`${fromDir}/${WH_PREFIX}${fromName}`);
    fs.renameSync(bytesOf(`${fromDir}/${fromName}`), bytesOf(to));
  },
  makeOpaque(dir) {
    touch(`${dir}/${OPAQUE_MARKER}`);
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
    remove(dir, name, hasEntry, temp) {
      const target = `${dir}/${name}`;
      if (!hasEntry) {
        try {
          sys.mknod(target, S_IFCHR, 0);
        } catch (err) {
          if (!unsupported(err)) throw err;
          touch(`${dir}/${WH_PREFIX}${name}`);
        }
        return;
      }
      const tmp = temp();
      try {
        sys.renameat2(target, tmp, RENAME_WHITEOUT);
      } catch (err) {
        if (!unsupported(err)) throw err;
        aufsWriter.remove(dir, name, hasEntry, temp);
        return;
      }
      fs.rmSync(bytesOf(tmp), { recursive: true, force: true });
    },
    renameWithWhiteout(fromDir, fromName, to, temp) {
      try {
        sys.renameat2(`${fromDir}/${fromName}`, to, RENAME_WHITEOUT);
      } catch (err) {
        if (!unsupported(err)) throw err;
        aufsWriter.renameWithWhiteout(fromDir, fromName, to, temp);
      }
    },
    makeOpaque(dir) {
      try {
        sys.lsetxattr(dir, opaqueXattr, Buffer.from("y"), 0);
      } catch (err) {
        if (!unsupported(err)) throw err;
        touch(`${dir}/${OPAQUE_MARKER}`);
      }
    },
  };
}

export const overlayWriter = overlayWriterFor("trusted");

/** The writer of `format`, overlay markers in the xattr namespace `ns`. */
export function whiteoutWriter(format: WhiteoutFormat, ns: XattrNamespace): WhiteoutWriter {
  return format === "overlay" ? overlayWriterFor(ns) : aufsWriter;
}
