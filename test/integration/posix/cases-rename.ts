/** rename(2) and renameat2(2), mostly on names that live in the lower layer. */
import { strict as assert } from "node:assert";
import { py } from "../../helpers/syscalls";
import { posixCase, type PosixCase } from "./case";
import * as fs from "node:fs";
import { code, fsp, inoViews, ls, lstat, readText } from "./util";

const EXDEV_NOTE =
  "overlayfs with redirect_dir=off refuses to rename a directory that exists in a lower layer (EXDEV)";

async function renameat2(from: string, to: string, flag: "RENAME_NOREPLACE" | "RENAME_EXCHANGE") {
  const r = await py(`out["r"] = attempt(renameat2, A[0], A[1], ${flag})`, [from, to]);
  return r.r as string;
}

export const renameCases: PosixCase[] = [
  posixCase({
    area: "rename",
    name: "rename a file over another file: the target is replaced, the source keeps its inode",
    layout: { lower: { a: "A", b: "B" } },
    async run(env) {
      const before = await lstat(env.at("a"));
      await fsp.rename(env.at("a"), env.at("b"));
      assert.equal(await readText(env.at("b")), "A");
      assert.equal(await code(fsp.lstat(env.at("a"))), "ENOENT");
      assert.deepEqual(await ls(env.root), ["b"]);
      const after = await lstat(env.at("b"));
      assert.equal(after.ino, before.ino, "rename keeps the inode number");
      assert.equal(after.nlink, 1);
    },
  }),
  posixCase({
    area: "rename",
    name: "rename onto a name that was deleted (a whiteout), and create the source name again",
    layout: { lower: { a: "A", b: "B" } },
    async run(env) {
      await fsp.unlink(env.at("b"));
      await fsp.rename(env.at("a"), env.at("b"));
      assert.equal(await readText(env.at("b")), "A");
      assert.deepEqual(await ls(env.root), ["b"]);
      await fsp.writeFile(env.at("a"), "new a");
      assert.deepEqual(await ls(env.root), ["a", "b"]);
      assert.equal(await readText(env.at("a")), "new a");
      assert.equal(await readText(env.at("b")), "A");
    },
  }),
  posixCase({
    area: "rename",
    name: "rename a file across directories",
    layout: { lower: { d1: { f: "F", keep: "k" }, d2: { g: "G" } } },
    async run(env) {
      await fsp.rename(env.at("d1/f"), env.at("d2/f"));
      await fsp.rename(env.at("d2/g"), env.at("d1/g2"));
      assert.deepEqual(await ls(env.at("d1")), ["g2", "keep"]);
      assert.deepEqual(await ls(env.at("d2")), ["f"]);
      assert.equal(await readText(env.at("d2/f")), "F");
      assert.equal(await readText(env.at("d1/g2")), "G");
    },
  }),
  posixCase({
    area: "rename",
    name: "rename onto itself, or between two hard links of one file, does nothing",
    layout: { lower: { a: "A" } },
    async run(env) {
      await fsp.rename(env.at("a"), env.at("a"));
      assert.equal(await readText(env.at("a")), "A");
      assert.deepEqual(await ls(env.root), ["a"]);
      await fsp.link(env.at("a"), env.at("b"));
      await fsp.rename(env.at("a"), env.at("b"));
      assert.deepEqual(await ls(env.root), ["a", "b"], "both links stay");
      assert.equal((await lstat(env.at("a"))).nlink, 2);
      assert.equal(await readText(env.at("b")), "A");
    },
  }),
  posixCase({
    area: "rename",
    name: "RENAME_NOREPLACE fails EEXIST on an existing target, succeeds on a free or deleted name",
    layout: { lower: { a: "A", b: "B", c: "C" } },
    async run(env) {
      assert.equal(await renameat2(env.at("a"), env.at("b"), "RENAME_NOREPLACE"), "EEXIST");
      assert.equal(await readText(env.at("a")), "A");
      assert.equal(await readText(env.at("b")), "B");
      assert.equal(await renameat2(env.at("a"), env.at("n"), "RENAME_NOREPLACE"), "ok");
      await fsp.unlink(env.at("c"));
      assert.equal(await renameat2(env.at("b"), env.at("c"), "RENAME_NOREPLACE"), "ok");
      assert.deepEqual(await ls(env.root), ["c", "n"]);
      assert.equal(await readText(env.at("c")), "B");
      assert.equal(await readText(env.at("n")), "A");
    },
  }),
  posixCase({
    area: "rename",
    name: "RENAME_EXCHANGE swaps two names (lower file, upper file, directory) with their inodes",
    layout: { lower: { a: "A", d: { x: "X" } }, upper: { b: "B" } },
    async run(env) {
      const ia = (await lstat(env.at("a"))).ino;
      const ib = (await lstat(env.at("b"))).ino;
      assert.equal(await renameat2(env.at("a"), env.at("b"), "RENAME_EXCHANGE"), "ok");
      assert.equal(await readText(env.at("a")), "B");
      assert.equal(await readText(env.at("b")), "A");
      assert.equal((await lstat(env.at("a"))).ino, ib);
      assert.equal((await lstat(env.at("b"))).ino, ia);
      assert.equal(await renameat2(env.at("b"), env.at("d"), "RENAME_EXCHANGE"), "ok");
      assert.deepEqual(await ls(env.at("b")), ["x"]);
      assert.equal(await readText(env.at("b/x")), "X");
      assert.equal(await readText(env.at("d")), "A");
      assert.equal(await renameat2(env.at("a"), env.at("missing"), "RENAME_EXCHANGE"), "ENOENT");
      assert.deepEqual(await ls(env.root), ["a", "b", "d"]);
    },
    differs: {
      overlayfs: `${EXDEV_NOTE}; exchanging a lower directory is refused the same way`,
    },
  }),
  posixCase({
    area: "rename",
    name: "rename a directory from the lower layer; a new directory of the old name starts empty",
    layout: { lower: { d: { f: "F", s: { g: "G" } }, keep: "k" } },
    async run(env) {
      await fsp.rename(env.at("d"), env.at("e"));
      assert.deepEqual(await ls(env.root), ["e", "keep"]);
      assert.deepEqual(await ls(env.at("e")), ["f", "s"]);
      assert.equal(await readText(env.at("e/s/g")), "G");
      assert.equal(await code(fsp.lstat(env.at("d"))), "ENOENT");
      await fsp.mkdir(env.at("d"));
      assert.deepEqual(await ls(env.at("d")), []);
    },
    differs: { overlayfs: EXDEV_NOTE },
  }),
  posixCase({
    area: "rename",
    name: "a renamed lower directory and everything in it keep their st_ino (any stat mask), after a second rename and a remount",
    layout: {
      lower: { d: { f: "F", gone: "x", s: { g: "G", deep: { h: "H" } } } },
      upper: { d: { u: "U", fresh: {} } },
      prepareLower: (dir) => fs.linkSync(`${dir}/d/f`, `${dir}/d/f2`),
    },
    async run(env) {
      await fsp.unlink(env.at("d/gone"));
      const rels = [".", "f", "f2", "s", "s/g", "s/deep", "s/deep/h", "u", "fresh"];
      const inos = (dir: string) => inoViews(rels.map((r) => env.at(dir, r)));
      const before = await inos("d");
      assert.equal(before[1], before[2], "f and f2 are one file");
      assert.equal(new Set(before).size, rels.length - 1, "all other numbers differ");
      await fsp.rename(env.at("d"), env.at("e"));
      assert.deepEqual(await inos("e"), before, "after the rename");
      assert.equal((await lstat(env.at("e/f2"))).nlink, 2, "f and f2 are still one file");
      await fsp.rename(env.at("e"), env.at("e2"));
      assert.deepEqual(await inos("e2"), before, "after a second rename");
      await env.remount();
      assert.deepEqual(await inos("e2"), before, "after a remount");
      await fsp.mkdir(env.at("d"));
      assert.ok(!before.includes((await lstat(env.at("d"))).ino), "a new directory of the old name is new");
    },
    differs: { overlayfs: EXDEV_NOTE },
  }),
  posixCase({
    area: "rename",
    name: "rename a new directory over an empty lower directory replaces it",
    layout: { lower: { empty: {}, full: { x: "x" } } },
    async run(env) {
      await fsp.mkdir(env.at("n"));
      await fsp.writeFile(env.at("n/f"), "F");
      assert.equal(await code(fsp.rename(env.at("n"), env.at("full"))), "ENOTEMPTY");
      await fsp.rename(env.at("n"), env.at("empty"));
      assert.deepEqual(await ls(env.root), ["empty", "full"]);
      assert.deepEqual(await ls(env.at("empty")), ["f"]);
      assert.equal(await readText(env.at("empty/f")), "F");
    },
  }),
];
