/**
 * A layer in every whiteout format, for the image tests: what a union's rw branch can hold after a
 * session of changes, plus the overlay formats other tools write.
 *
 *   /new, /link-to-new (hard link), /sym -> new, /fifo, /suid (4755, owned 1234:5678), /ro-dir (0555)
 *   /d/f (replaces a lower file), /d/.wh.gone (aufs whiteout), /d/ovl (0/0 char dev whiteout)
 *   /opq-aufs/.wh..wh..opq + /opq-aufs/mine, /opq-xattr (trusted.overlay.opaque=y) + /opq-xattr/mine
 *   /xw (opaque=x) with /xw/w (overlay.whiteout xattr, zero size) and /xw/real
 *   /.wh..wh.unionfs/… (the union's work dir), /copied (carries trusted.unionfs.origin)
 *   /.wh.top (a top-level aufs whiteout)
 *
 * The lower layer has /d/f, /d/gone, /d/ovl, /opq-aufs/old, /opq-xattr/old, /xw/w, /xw/other, /top, /copied.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { lsetxattr, mknod } from "../../../src/sys/libc";
import { file, makeTempDir, writeTree } from "../../helpers/tmp";

const S_IFCHR = 0o020000;
const S_IFIFO = 0o010000;

export interface LayerFixture {
  root: string;
  upper: string;
  lower: string;
}

export function makeLayerFixture(): LayerFixture {
  const root = makeTempDir("image");
  const upper = path.join(root, "upper");
  const lower = path.join(root, "lower");
  fs.mkdirSync(upper);
  fs.mkdirSync(lower);
  writeTree(lower, {
    d: { f: "lower f", gone: "g", ovl: "o" },
    "opq-aufs": { old: "old" },
    "opq-xattr": { old: "old" },
    xw: { w: "lower w", other: "o" },
    top: "t",
    copied: "c",
  });
  writeTree(upper, {
    new: "new file\n",
    suid: file("#!/bin/sh\n", 0o4755),
    d: { f: "upper f", ".wh.gone": "" },
    "opq-aufs": { ".wh..wh..opq": "", mine: "m" },
    "opq-xattr": { mine: "m" },
    xw: { w: "", real: "r" },
    ".wh..wh.unionfs": { junk: "work in progress" },
    copied: "copied up",
    ".wh.top": "",
  });
  fs.mkdirSync(path.join(upper, "ro-dir"));
  fs.writeFileSync(path.join(upper, "ro-dir", "inside"), "x");
  fs.chmodSync(path.join(upper, "ro-dir"), 0o555);
  fs.linkSync(path.join(upper, "new"), path.join(upper, "link-to-new"));
  fs.symlinkSync("new", path.join(upper, "sym"));
  mknod(path.join(upper, "fifo"), S_IFIFO | 0o640, 0);
  mknod(path.join(upper, "d", "ovl"), S_IFCHR, 0);
  fs.chownSync(path.join(upper, "suid"), 1234, 5678);
  fs.chmodSync(path.join(upper, "suid"), 0o4755);
  lsetxattr(path.join(upper, "opq-xattr"), "trusted.overlay.opaque", Buffer.from("y"), 0);
  lsetxattr(path.join(upper, "xw"), "trusted.overlay.opaque", Buffer.from("x"), 0);
  lsetxattr(path.join(upper, "xw", "w"), "trusted.overlay.whiteout", Buffer.from(""), 0);
  lsetxattr(path.join(upper, "copied"), "trusted.unionfs.origin", Buffer.from("1234:5678"), 0);
  return { root, upper, lower };
}

const byPathBytes = (a: string, b: string): number =>
  a.slice(2) < b.slice(2) ? -1 : a.slice(2) > b.slice(2) ? 1 : 0;

/** The diff lines the fixture gives with its lower layer. */
export const FIXTURE_DIFF_WITH_LOWER = [
  "C /copied",
  "C /d",
  "C /d/f",
  "D /d/gone",
  "D /d/ovl",
  "A /fifo",
  "A /link-to-new",
  "A /new",
  "A /ro-dir",
  "A /ro-dir/inside",
  "A /suid",
  "A /sym",
  "C /opq-aufs",
  "A /opq-aufs/mine",
  "D /opq-aufs/old",
  "C /opq-xattr",
  "A /opq-xattr/mine",
  "D /opq-xattr/old",
  "D /top",
  "C /xw",
  "A /xw/real",
  "D /xw/w",
].sort(byPathBytes);

/** Without lowers: everything provided is A, whiteouts D; what opaque directories hide is unknown. */
export const FIXTURE_DIFF_WITHOUT_LOWER = FIXTURE_DIFF_WITH_LOWER.filter((l) => !l.endsWith("/old")).map(
  (l) => l.replace(/^C /, "A "),
);
