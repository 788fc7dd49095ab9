/**
 * The overlay formats (kernel overlayfs and fuse-overlayfs): a character device 0/0 named `<name>` hides
 * it; a directory whose `<prefix>opaque` xattr is "y" is opaque; a directory marked "x" may hold
 * zero-size regular files carrying a `<prefix>whiteout` xattr, each hiding its own name. The prefix is
 * the xattr namespace: `trusted.overlay.` (overlayfs), `user.overlay.` (overlayfs with `userxattr`,
 * rootless), `user.fuseoverlayfs.` (fuse-overlayfs without CAP_SYS_ADMIN).
 *
 * Invariant: writing never turns an "x" directory's xattr whiteouts into visible files: such a directory
 * is not marked "y" (`Unsupported`: the registry writes another format's opaque marker).
 */
import { codeOf } from "../errors";
import type { Layer, Stat } from "../layer";
import { DirView, Unsupported, type Format } from "./format";

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;
const S_IFREG = 0o100000;
const RENAME_WHITEOUT = 4;

/** The whiteout device: a character device with device number 0/0. */
function isWhiteoutDevice(st: Stat): boolean {
  return (Number(st.mode) & S_IFMT) === S_IFCHR && st.rdev === 0n;
}

/** Errors meaning "this filesystem cannot do that": another format is written instead. */
function unsupported(err: unknown): boolean {
  const code = codeOf(err);
  return code === "EINVAL" || code === "EOPNOTSUPP" || code === "ENOSYS" || code === "EPERM";
}

/** Runs `fn`, turning "the filesystem cannot" into `Unsupported`. */
function orUnsupported<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (unsupported(err)) throw new Unsupported(err);
    throw err;
  }
}

function hasXattr(layer: Layer, rel: string, name: string): boolean {
  try {
    return layer.listxattr(rel).includes(name);
  } catch {
    return false;
  }
}

/** The overlay format whose xattrs live under `prefix` ("trusted.overlay."); `name` its name. */
export function overlayFormat(name: string, prefix: string): Format {
  const opaque = `${prefix}opaque`;
  const whiteout = `${prefix}whiteout`;
  const xattrWhiteouts = (dir: DirView): boolean => dir.xattr(opaque) === "x";
  return {
    name,
    mayBeWhiteoutEntry: (type, dir) => type === S_IFCHR || (type === S_IFREG && xattrWhiteouts(dir)),
    isWhiteoutEntry(st, rel, dir) {
      if (isWhiteoutDevice(st)) return true;
      if ((Number(st.mode) & S_IFMT) !== S_IFREG || st.size !== 0n) return false;
      return xattrWhiteouts(dir) && hasXattr(dir.layer, rel, whiteout);
    },
    isOpaque: (dir) => dir.xattr(opaque) === "y",
    writer: {
      whiteOut(upper, dir, entry) {
        orUnsupported(() => upper.mknod(`${dir}/${entry}`, S_IFCHR, 0));
        return entry;
      },
      replace(upper, dir, entry, work) {
        const tmp = work.temp();
        orUnsupported(() => work.layer.moveFrom(upper, `${dir}/${entry}`, tmp, RENAME_WHITEOUT));
        work.layer.removeTree(tmp);
      },
      renameWithWhiteout(upper, dir, entry, to) {
        orUnsupported(() => upper.rename(`${dir}/${entry}`, to, RENAME_WHITEOUT));
      },
      makeOpaque(layer, dir) {
        if (xattrWhiteouts(new DirView(layer, dir))) throw new Unsupported(new Error("xattr whiteouts"));
        orUnsupported(() => layer.setxattr(dir, opaque, Buffer.from("y"), 0));
      },
    },
  };
}
