/**
 * Bug B4: objects whose layer root + layer-relative path passes PATH_MAX (4096) must work, as they do on
 * a plain directory. The trees are built and checked on disk by chdir, one component at a time, since no
 * absolute path reaches them.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { RENAME_EXCHANGE } from "../../../src/unionfs/types";
import { makeUnion, root, type Fixture, readAll, umaskZeroInSuite } from "./fixture";
import { openFds } from "../../helpers/fds";
import { code } from "../../helpers/errno";

const { O_WRONLY, O_APPEND, O_CREAT } = fs.constants;

/** A union path of `levels` directories named with 255 × `ch`. */
function deep(ch: string, levels: number): string {
  return `/${ch.repeat(255)}`.repeat(levels);
}

/** 15 levels: 3840 bytes, so a 240-byte name below gives a 4081-byte path, over PATH_MAX with the root. */
const LOWER_DIR = deep("d", 15);
const UPPER_DIR = deep("u", 15);
/** A 240-byte name starting with `tag`. */
const n = (tag: string): string => tag + "x".repeat(240 - tag.length);

/** Runs `fn` with the cwd at `dir + rel` (reached by chdir, one component at a time), then restores it. */
function inDir<T>(dir: string, rel: string, fn: () => T): T {
  const before = process.cwd();
  try {
    process.chdir(dir);
    for (const name of rel.split("/").slice(1)) process.chdir(name);
    return fn();
  } finally {
    process.chdir(before);
  }
}

/** Creates the directories of `rel` below `dir` and, in the last one, `files` (name → content). */
function makeDeep(dir: string, rel: string, files: Record<string, string> = {}): void {
  inDir(dir, "", () => {
    for (const name of rel.split("/").slice(1)) {
      fs.mkdirSync(name, { recursive: true });
      process.chdir(name);
    }
    for (const [name, content] of Object.entries(files)) {
      if (content === "<dir>") fs.mkdirSync(name);
      else fs.writeFileSync(name, content);
    }
  });
}

function writeAt(f: Fixture, p: string, flags: number, data: string): void {
  const fh = f.fs.open(p, flags);
  try {
    f.fs.write(fh, Buffer.from(data), 0n);
  } finally {
    f.fs.release(fh);
  }
}

describe("union core: paths longer than PATH_MAX below the layer roots (B4)", () => {
  let f: Fixture;
  umaskZeroInSuite();
  afterEach(() => {
    // Node's recursive rmSync joins paths, so it cannot delete these trees; rm(1) walks with openat.
    if (f) execFileSync("rm", ["-rf", "--", f.root]);
    f?.cleanup();
  });

  for (const format of ["aufs", "overlay"] as const) {
    it(`runs every operation on ~4080-byte paths in the lower and upper layer (${format} whiteouts)`, () => {
      f = makeUnion([{}, {}], undefined, format);
      const [upperDir, lowerDir] = f.dirs as [string, string];
      makeDeep(lowerDir, LOWER_DIR, {
        [n("lower")]: "lower bytes",
        [n("gone")]: "g",
        [n("mv")]: "moving",
        [n("ldir")]: "<dir>",
      });
      makeDeep(lowerDir, `${LOWER_DIR}/${n("tree")}`, { c: "child" });
      makeDeep(upperDir, UPPER_DIR, { [n("upper")]: "upper bytes" });
      const P = (name: string): string => `${LOWER_DIR}/${n(name)}`;
      const Q = (name: string): string => `${UPPER_DIR}/${n(name)}`;
      assert.ok(upperDir.length + P("lower").length > 4096, "the absolute form must pass PATH_MAX");
      const fdsBefore = openFds();

      // lstat and read, in both layers
      assert.equal(f.fs.getattr(P("lower")).size, 11n);
      assert.equal(f.fs.getattr(Q("upper")).size, 11n);
      assert.equal(readAll(f, P("lower")), "lower bytes");
      assert.equal(readAll(f, Q("upper")), "upper bytes");
      assert.equal(
        code(() => f.fs.getattr(P("missing"))),
        "ENOENT",
      );
      assert.equal(
        code(() => f.fs.getattr(`${P("lower")}/below-a-file`)),
        "ENOENT",
      );

      // create + write in a lower-only directory (its 15 parents are copied up first), then read
      const { fh } = f.fs.create(P("new"), O_WRONLY | O_CREAT, 0o644, root);
      f.fs.write(fh, Buffer.from("new bytes"), 0n);
      f.fs.release(fh);
      assert.equal(readAll(f, P("new")), "new bytes");
      assert.equal(
        inDir(upperDir, LOWER_DIR, () => fs.readFileSync(n("new"), "utf8")),
        "new bytes",
      );

      // mkdir / rmdir, of a new directory and of a lower one (which leaves a whiteout)
      assert.equal(f.fs.mkdir(P("newdir"), 0o755, root).mode & 0o170000, 0o040000);
      f.fs.rmdir(P("newdir"));
      assert.equal(
        code(() => f.fs.getattr(P("newdir"))),
        "ENOENT",
      );
      f.fs.rmdir(P("ldir"));
      assert.equal(
        code(() => f.fs.getattr(P("ldir"))),
        "ENOENT",
      );

      // unlink of a lower file leaves a whiteout in the upper layer; the lower file stays
      f.fs.unlink(P("gone"));
      assert.equal(
        code(() => f.fs.getattr(P("gone"))),
        "ENOENT",
      );
      const whiteout = inDir(upperDir, LOWER_DIR, () =>
        format === "aufs" ? fs.lstatSync(`.wh.${n("gone")}`).isFile() : fs.lstatSync(n("gone")).rdev === 0,
      );
      assert.ok(whiteout, "a whiteout for the deleted name");
      assert.equal(
        inDir(lowerDir, LOWER_DIR, () => fs.readFileSync(n("gone"), "utf8")),
        "g",
      );

      // rename: short -> long, long -> short, a lower file (whiteout left behind), a lower directory
      f.fs.release(f.fs.create("/s", O_WRONLY | O_CREAT, 0o644, root).fh);
      f.fs.rename("/s", P("r"), 0);
      assert.equal(f.fs.getattr(P("r")).size, 0n);
      f.fs.rename(P("r"), "/s2", 0);
      assert.equal(
        code(() => f.fs.getattr(P("r"))),
        "ENOENT",
      );
      f.fs.rename(P("mv"), "/mv", 0);
      assert.equal(readAll(f, "/mv"), "moving");
      assert.equal(
        code(() => f.fs.getattr(P("mv"))),
        "ENOENT",
      );
      f.fs.rename(P("tree"), `${Q("tree")}`, 0);
      assert.equal(readAll(f, `${Q("tree")}/c`), "child");
      assert.equal(
        code(() => f.fs.getattr(P("tree"))),
        "ENOENT",
      );
      f.fs.rename(Q("upper"), "/s2", RENAME_EXCHANGE);
      assert.equal(readAll(f, "/s2"), "upper bytes");
      assert.equal(f.fs.getattr(Q("upper")).size, 0n);
      f.fs.rename("/s2", Q("upper"), RENAME_EXCHANGE);

      // link (long to long), symlink and readlink
      f.fs.link(Q("upper"), P("hardlink"));
      assert.equal(f.fs.getattr(P("hardlink")).nlink, 2);
      assert.equal(readAll(f, P("hardlink")), "upper bytes");
      f.fs.symlink("some/target", P("symlink"), root);
      assert.equal(f.fs.readlink(P("symlink")), "some/target");

      // chmod, chown, utimens, truncate
      const a = f.fs.setattr(Q("upper"), {
        mode: 0o600,
        uid: 123,
        gid: 456,
        size: 5n,
        mtime: 1_234_567_891_000_000_123n,
        atime: 1_000_000_000_000_000_001n,
      });
      assert.deepEqual(
        [a.mode & 0o7777, a.uid, a.gid, a.size, a.mtimeNs, a.atimeNs],
        [0o600, 123, 456, 5n, 1_234_567_891_000_000_123n, 1_000_000_000_000_000_001n],
      );
      assert.equal(readAll(f, Q("upper")), "upper");

      // xattrs
      f.fs.setxattr(Q("upper"), "user.long", Buffer.from("value"), 0);
      assert.equal(f.fs.getxattr(Q("upper"), "user.long")?.toString(), "value");
      assert.ok(f.fs.listxattr(Q("upper")).includes("user.long"));
      f.fs.removexattr(Q("upper"), "user.long");
      assert.equal(f.fs.getxattr(Q("upper"), "user.long"), undefined);

      // copy-up of a lower file at that depth keeps its bytes; the lower file is unchanged
      const ino = f.fs.getattr(P("lower")).ino;
      writeAt(f, P("lower"), O_WRONLY | O_APPEND, "+appended");
      assert.equal(readAll(f, P("lower")), "lower bytes+appended");
      assert.equal(f.fs.getattr(P("lower")).ino, ino, "copy-up keeps the inode number");
      assert.equal(
        inDir(lowerDir, LOWER_DIR, () => fs.readFileSync(n("lower"), "utf8")),
        "lower bytes",
      );

      assert.equal(openFds(), fdsBefore, "no fd left open");
    });
  }

  it("reaches objects in trees deeper than PATH_MAX (union paths over 4096 bytes)", () => {
    f = makeUnion([{}, {}]);
    const [upperDir, lowerDir] = f.dirs as [string, string];
    const dir = deep("c", 17);
    makeDeep(lowerDir, dir, { file: "deep lower", sub: "<dir>" });
    const fdsBefore = openFds();
    assert.equal(readAll(f, `${dir}/file`), "deep lower");
    writeAt(f, `${dir}/file`, O_WRONLY | O_APPEND, "+");
    assert.equal(readAll(f, `${dir}/file`), "deep lower+");
    f.fs.release(f.fs.create(`${dir}/new`, O_WRONLY | O_CREAT, 0o644, root).fh);
    assert.deepEqual(
      inDir(upperDir, dir, () => fs.readdirSync(".").sort()),
      ["file", "new"],
      "copied up and created in the upper layer",
    );
    f.fs.rmdir(`${dir}/sub`);
    assert.equal(
      code(() => f.fs.getattr(`${dir}/sub`)),
      "ENOENT",
    );
    f.fs.unlink(`${dir}/file`);
    assert.equal(
      code(() => f.fs.getattr(`${dir}/file`)),
      "ENOENT",
    );
    assert.equal(
      inDir(lowerDir, dir, () => fs.readFileSync("file", "utf8")),
      "deep lower",
    );
    assert.equal(openFds(), fdsBefore, "no fd left open");
  });

  it("renames a lower directory holding a tree deeper than PATH_MAX (materialized in place), numbers kept", () => {
    f = makeUnion([{}, {}]);
    const [upperDir, lowerDir] = f.dirs as [string, string];
    const dir = deep("c", 17);
    makeDeep(lowerDir, dir, { file: "deep lower" });
    const ino = f.fs.getattr(`${dir}/file`).ino;
    const moved = `/z${deep("c", 16)}`;
    f.fs.rename(deep("c", 1), "/z", 0);
    assert.equal(readAll(f, `${moved}/file`), "deep lower");
    assert.equal(f.fs.getattr(`${moved}/file`).ino, ino);
    assert.equal(
      inDir(upperDir, moved, () => fs.readFileSync("file", "utf8")),
      "deep lower",
    );
  });

  it("fails with the errno of the missing component, without leaking fds", () => {
    f = makeUnion([{}, {}]);
    const fdsBefore = openFds();
    assert.equal(
      code(() => f.fs.getattr(`${LOWER_DIR}/f`)),
      "ENOENT",
    );
    assert.equal(
      code(() => f.fs.create(`${LOWER_DIR}/f`, O_WRONLY | O_CREAT, 0o644, root)),
      "ENOENT",
    );
    assert.equal(openFds(), fdsBefore);
  });
});
