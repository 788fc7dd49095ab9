/**
 * Materialization (renaming directories that live in lower layers): the view and every inode number
 * survive it, a second rename and a remount.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { originXattr } from "../../../src/cow";
import type { XattrNamespace } from "../../../src/sys/xattrns";
import { lsetxattr, tryLgetxattr } from "../../../src/sys/libc";
import { RENAME_EXCHANGE } from "../../../src/unionfs/types";
import { makeUnion, readAll, root, type Fixture, umaskZeroInSuite, names } from "./fixture";

/** Every object below union dir `dir` (itself included, as "."): path relative to it → reported inode number. */
function inos(f: Fixture, dir: string, rel = "."): Map<string, bigint> {
  const out = new Map<string, bigint>([[rel, f.fs.getattr(dir).ino]]);
  for (const name of names(f, dir)) {
    const p = `${dir}/${name}`;
    const childRel = rel === "." ? name : `${rel}/${name}`;
    if ((f.fs.getattr(p).mode & 0o170000) === 0o040000) {
      for (const [k, v] of inos(f, p, childRel)) out.set(k, v);
    } else {
      out.set(childRel, f.fs.getattr(p).ino);
    }
  }
  return out;
}

function diskIno(p: string): bigint {
  return fs.lstatSync(p, { bigint: true }).ino;
}

/** Upper d merged with L1's and L2's (bottom); sub merged too; fresh only in upper; f2 a lower hard link. */
function mergedTree(whiteout: "aufs" | "overlay" = "aufs", xattrs?: XattrNamespace): Fixture {
  const f = makeUnion(
    [
      { d: { u: "up", fresh: { inside: "i" }, sub: { mine: "m" } } },
      { d: { mid: "L1", sub: { g2: "x" } } },
      { d: { f: "a", gone: "x", sub: { g: "b", deep: { h: "c" } } } },
    ],
    undefined,
    whiteout,
    xattrs,
  );
  fs.linkSync(path.join(f.dirs[2] as string, "d/f"), path.join(f.dirs[2] as string, "d/f2"));
  f.fs.unlink("/d/gone");
  return f;
}

describe("materialize", () => {
  let f: Fixture;
  umaskZeroInSuite();
  afterEach(() => f?.cleanup());

  it("regression: renaming a lower dir keeps its inode number and those below it, across a second rename and a remount", () => {
    f = mergedTree();
    const before = inos(f, "/d");
    assert.equal(before.get("."), diskIno(path.join(f.dirs[2] as string, "d")), "bottom-most layer's number");
    assert.equal(before.get("f"), before.get("f2"));
    f.fs.rename("/d", "/e", 0);
    assert.deepEqual(inos(f, "/e"), before);
    f.fs.rename("/e", "/e2", 0);
    assert.deepEqual(inos(f, "/e2"), before);
    f.remount();
    assert.deepEqual(inos(f, "/e2"), before);
    assert.deepEqual([...before.keys()].sort(), [
      ".",
      "f",
      "f2",
      "fresh",
      "fresh/inside",
      "mid",
      "sub",
      "sub/deep",
      "sub/deep/h",
      "sub/g",
      "sub/g2",
      "sub/mine",
      "u",
    ]);
    assert.equal(
      new Set(before.values()).size,
      before.size - 1,
      "numbers are unique (f and f2 are one file)",
    );
  });

  it("renaming a lower dir keeps every inode number in a user.* mount (rootless), origins in user.unionfs.origin", () => {
    f = mergedTree("overlay", "user");
    const before = inos(f, "/d");
    f.fs.rename("/d", "/e", 0);
    f.remount();
    assert.deepEqual(inos(f, "/e"), before);
    const e = path.join(f.dirs[0] as string, "e");
    assert.equal(
      tryLgetxattr(path.join(e, "sub"), "user.unionfs.origin")?.readBigUInt64LE(),
      before.get("sub"),
    );
    assert.equal(
      tryLgetxattr(path.join(e, "sub/g"), "user.unionfs.origin")?.readBigUInt64LE(),
      before.get("sub/g"),
    );
    assert.equal(tryLgetxattr(path.join(e, "sub"), originXattr("trusted")), undefined);
    assert.equal(tryLgetxattr(e, "user.overlay.opaque")?.toString(), "y");
    assert.equal(f.fs.listxattr("/e").length, 0, "the markers are not shown");
  });

  it("a trusted.* mount reads origins a user.* mount recorded (the same upper branch mounted by root)", () => {
    f = mergedTree("aufs", "user");
    const before = inos(f, "/d");
    f.fs.rename("/d", "/e", 0);
    f.remount("trusted");
    assert.deepEqual(inos(f, "/e"), before);
  });

  it("regression: a merged dir reports its bottom-most layer's number before and after it is only in the top layer", () => {
    f = mergedTree();
    const bottom = diskIno(path.join(f.dirs[2] as string, "d/sub"));
    assert.equal(f.fs.getattr("/d/sub").ino, bottom);
    f.fs.rename("/d", "/e", 0);
    assert.equal(f.fs.getattr("/e/sub").ino, bottom);
    const upperSub = path.join(f.dirs[0] as string, "e/sub");
    assert.ok(fs.existsSync(path.join(upperSub, ".wh..wh..opq")), "opaque, only in the top layer");
    assert.equal(
      tryLgetxattr(upperSub, originXattr("trusted"))?.readBigUInt64LE(),
      bottom,
      "origin recorded",
    );
  });

  it("regression: the view survives materialization, whiteouts included, and the copy holds none", () => {
    f = mergedTree();
    f.fs.rename("/d", "/e", 0);
    assert.deepEqual(names(f, "/"), ["e"]);
    assert.deepEqual(names(f, "/e"), ["f", "f2", "fresh", "mid", "sub", "u"]);
    assert.deepEqual(names(f, "/e/sub"), ["deep", "g", "g2", "mine"]);
    assert.equal(readAll(f, "/e/sub/deep/h"), "c");
    assert.equal(readAll(f, "/e/mid"), "L1");
    assert.deepEqual(fs.readdirSync(path.join(f.dirs[0] as string, "e")).sort(), [
      ".wh..wh..opq",
      "f",
      "f2",
      "fresh",
      "mid",
      "sub",
      "u",
    ]);
  });

  it("regression: lower hard links stay one inode (a write through one name shows through the other)", () => {
    f = mergedTree();
    f.fs.rename("/d", "/e", 0);
    assert.equal(f.fs.getattr("/e/f").nlink, 2);
    const fh = f.fs.open("/e/f", fs.constants.O_WRONLY);
    f.fs.write(fh, Buffer.from("A"), 0n);
    f.fs.release(fh);
    assert.equal(readAll(f, "/e/f2"), "A");
    assert.equal(f.fs.getattr("/e/f").ino, f.fs.getattr("/e/f2").ino);
  });

  it("regression: a dir made in the top layer keeps its own number (no origin), renamed or inside a renamed dir", () => {
    f = mergedTree();
    const fresh = f.fs.getattr("/d/fresh").ino;
    assert.equal(fresh, diskIno(path.join(f.dirs[0] as string, "d/fresh")));
    f.fs.mkdir("/n", 0o755, root);
    const n = f.fs.getattr("/n").ino;
    f.fs.rename("/d", "/e", 0);
    f.fs.rename("/n", "/e/n", 0);
    assert.equal(f.fs.getattr("/e/fresh").ino, fresh);
    assert.equal(f.fs.getattr("/e/n").ino, n);
    assert.equal(tryLgetxattr(path.join(f.dirs[0] as string, "e/fresh"), originXattr("trusted")), undefined);
  });

  it("regression: a dir made where a renamed lower dir was gets a number of its own", () => {
    f = mergedTree();
    const d = f.fs.getattr("/d").ino;
    f.fs.rename("/d", "/e", 0);
    f.fs.mkdir("/d", 0o755, root);
    assert.notEqual(f.fs.getattr("/d").ino, d);
    assert.equal(f.fs.getattr("/e").ino, d);
    f.fs.rename("/e", "/d2", 0);
    f.remount();
    assert.notEqual(f.fs.getattr("/d").ino, d);
    assert.equal(f.fs.getattr("/d2").ino, d);
  });

  it("regression: RENAME_EXCHANGE of a lower dir and a lower file keeps both numbers", () => {
    f = makeUnion([{}, { a: "file", d: { x: "1", s: { y: "2" } } }]);
    const a = f.fs.getattr("/a").ino;
    const before = inos(f, "/d");
    f.fs.rename("/a", "/d", RENAME_EXCHANGE);
    assert.equal(f.fs.getattr("/d").ino, a);
    assert.deepEqual(inos(f, "/a"), before);
  });

  it("regression: overlay format: opaque by xattr, whiteouts gone, numbers kept", () => {
    f = mergedTree("overlay");
    const before = inos(f, "/d");
    f.fs.rename("/d", "/e", 0);
    assert.deepEqual(inos(f, "/e"), before);
    const e = path.join(f.dirs[0] as string, "e");
    assert.equal(tryLgetxattr(e, "trusted.overlay.opaque")?.toString(), "y");
    assert.deepEqual(fs.readdirSync(e).sort(), ["f", "f2", "fresh", "mid", "sub", "u"]);
  });

  it("regression: an opaque=x dir is made opaque without its xattr whiteouts turning into files", () => {
    f = makeUnion([{ d: { w: "", real: "r" } }, { d: { w: "lower", other: "o" } }], undefined, "overlay");
    lsetxattr(path.join(f.dirs[0] as string, "d"), "trusted.overlay.opaque", Buffer.from("x"), 0);
    lsetxattr(path.join(f.dirs[0] as string, "d/w"), "trusted.overlay.whiteout", Buffer.from(""), 0);
    assert.deepEqual(names(f, "/d"), ["other", "real"]);
    f.fs.rename("/d", "/e", 0);
    assert.deepEqual(names(f, "/e"), ["other", "real"]);
    assert.ok(!fs.existsSync(path.join(f.dirs[0] as string, "e/w")));
  });
});
