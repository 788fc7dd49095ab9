/**
 * src/layer/absent.ts, and the writable directory layer that uses it: a name found missing is answered
 * from memory until the layer itself makes something appear there. No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AbsentNames } from "../../../src/layer/absent";
import { openWritableDir } from "../../../src/layer";
import { fromText } from "../../../src/sys/bytes";

const RENAME_EXCHANGE = 2;

describe("layer: names known to be missing", () => {
  it("remembers misses per directory; a creation forgets its directory only", () => {
    const a = new AbsentNames();
    a.add("/d/x");
    a.add("/d/y");
    a.add("/e/x");
    a.add("/top");
    assert.ok(a.has("/d/x") && a.has("/d/y") && a.has("/e/x") && a.has("/top"));
    assert.equal(a.has("/d/z"), false);
    assert.equal(a.has(""), false, "the root is never missing");
    a.created("/d/z");
    assert.equal(a.has("/d/x"), false);
    assert.ok(a.has("/e/x") && a.has("/top"));
    a.created("/new");
    assert.equal(a.has("/top"), false, "a name made in the root forgets the root's misses");
  });

  it("a move forgets its directory and everything below where the tree lands", () => {
    const a = new AbsentNames();
    for (const rel of ["/d/x", "/d/sub/y", "/d/sub/deeper/z", "/dd/x", "/e/x"]) a.add(rel);
    a.moved("/d");
    assert.deepEqual(
      ["/d/x", "/d/sub/y", "/d/sub/deeper/z", "/dd/x", "/e/x"].map((r) => a.has(r)),
      [false, false, false, true, true],
      "/dd is not below /d",
    );
  });
});

describe("layer: a writable directory layer answers known misses from memory, and never stale", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-absent-"));
    for (const d of ["rw/d", "rw/src/inner", "work"]) fs.mkdirSync(path.join(dir, d), { recursive: true });
    fs.writeFileSync(path.join(dir, "rw/src/inner/f"), "f");
    fs.writeFileSync(path.join(dir, "rw/file"), "x");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const layers = (): ReturnType<typeof openWritableDir>[] => [
    openWritableDir(fromText(path.join(dir, "rw"))),
    openWritableDir(fromText(path.join(dir, "work"))),
  ];

  it("sees each name the layer makes: create, mkdir, symlink, mknod, link, open with O_CREAT", () => {
    const [rw, work] = layers();
    try {
      const names = ["/d/c", "/d/m", "/d/s", "/d/n", "/d/l", "/d/o", "/file/below"];
      for (const n of names) assert.equal(rw!.tryLstat(n), undefined);
      rw!.create("/d/c", fs.constants.O_WRONLY, 0o644).close();
      rw!.mkdir("/d/m", 0o755);
      rw!.symlink("c", "/d/s");
      rw!.mknod("/d/n", 0o010644, 0);
      rw!.link("/d/c", "/d/l");
      rw!.openAccess("/d/o", fs.constants.O_WRONLY | fs.constants.O_CREAT).close();
      for (const n of names.slice(0, 6)) assert.ok(rw!.tryLstat(n) !== undefined, n);
      fs.unlinkSync(path.join(dir, "rw/file")); // behind the layer's back: not how a union changes it,
      rw!.mkdir("/file", 0o755); // but the mkdir through the layer makes /file a directory
      rw!.create("/file/below", fs.constants.O_WRONLY, 0o644).close();
      assert.ok(rw!.tryLstat("/file/below") !== undefined, "a name below what was a file (ENOTDIR)");
    } finally {
      rw!.close();
      work!.close();
    }
  });

  it("sees a tree moved in, from the work dir or by a rename, however deep the names looked up", () => {
    const [rw, work] = layers();
    try {
      for (const n of ["/t/inner/f", "/t/inner", "/t", "/src2/inner/f"])
        assert.equal(rw!.tryLstat(n), undefined);
      rw!.rename("/src", "/t");
      assert.ok(rw!.tryLstat("/t/inner/f") !== undefined);
      assert.equal(rw!.tryLstat("/src/inner/f"), undefined);
      work!.mkdir("/tmp1", 0o700);
      work!.create("/tmp1/g", fs.constants.O_WRONLY, 0o600).close();
      assert.equal(rw!.tryLstat("/src2/inner"), undefined);
      rw!.moveFrom(work!, "/tmp1", "/src2");
      assert.ok(rw!.tryLstat("/src2/g") !== undefined);
      assert.equal(work!.tryLstat("/tmp1"), undefined);
      rw!.mkdir("/x", 0o755);
      assert.equal(rw!.tryLstat("/x/inner"), undefined);
      rw!.rename("/x", "/t", RENAME_EXCHANGE);
      assert.ok(rw!.tryLstat("/x/inner/f") !== undefined, "the exchanged tree is seen where it went");
    } finally {
      rw!.close();
      work!.close();
    }
  });
});
