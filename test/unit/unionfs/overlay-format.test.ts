import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { lsetxattr, mknod, tryLgetxattr } from "../../../src/sys/libc";
import { RENAME_EXCHANGE } from "../../../src/unionfs/types";
import { makeUnion, root, type Fixture, umaskZeroInSuite, names } from "./fixture";

const { O_WRONLY, O_CREAT, O_RDONLY } = fs.constants;
const S_IFCHR = 0o020000;

function isCharWhiteout(p: string): boolean {
  const st = fs.lstatSync(p);
  return st.isCharacterDevice() && st.rdev === 0;
}

describe("overlay-format layers", () => {
  let f: Fixture;
  umaskZeroInSuite();
  afterEach(() => f?.cleanup());

  describe("reading (any mount)", () => {
    it("a 0/0 character device in a higher layer hides the name", () => {
      f = makeUnion([{}, {}, { gone: "g", kept: "k" }]);
      mknod(path.join(f.dirs[1] as string, "gone"), S_IFCHR, 0);
      assert.deepEqual(names(f, "/"), ["kept"]);
      assert.throws(() => f.fs.getattr("/gone"), { code: "ENOENT" });
    });

    it("trusted.overlay.opaque=y makes a directory opaque", () => {
      f = makeUnion([{}, { d: { mine: "1" } }, { d: { hidden: "h" } }]);
      lsetxattr(path.join(f.dirs[1] as string, "d"), "trusted.overlay.opaque", Buffer.from("y"), 0);
      assert.deepEqual(names(f, "/d"), ["mine"]);
    });

    it("user.overlay.opaque=y (rootless overlayfs) makes a directory opaque, in a trusted.* mount too", () => {
      f = makeUnion([{}, { d: { mine: "1" } }, { d: { hidden: "h" } }], undefined, "overlay", "trusted");
      lsetxattr(path.join(f.dirs[1] as string, "d"), "user.overlay.opaque", Buffer.from("y"), 0);
      assert.deepEqual(names(f, "/d"), ["mine"]);
    });

    it("in a dir marked opaque=x, a zero-size file with overlay.whiteout hides its name", () => {
      f = makeUnion([{}, { d: { w: "", real: "r" } }, { d: { w: "lower", other: "o" } }]);
      lsetxattr(path.join(f.dirs[1] as string, "d"), "trusted.overlay.opaque", Buffer.from("x"), 0);
      lsetxattr(path.join(f.dirs[1] as string, "d/w"), "trusted.overlay.whiteout", Buffer.from(""), 0);
      assert.deepEqual(names(f, "/d"), ["other", "real"]);
      assert.throws(() => f.fs.getattr("/d/w"), { code: "ENOENT" });
    });
  });

  describe("writing (overlay-format mount)", () => {
    it("unlink of a lower file leaves a 0/0 character device", () => {
      f = makeUnion([{}, { b: "b" }], undefined, "overlay");
      f.fs.unlink("/b");
      assert.ok(isCharWhiteout(path.join(f.dirs[0] as string, "b")));
      assert.deepEqual(names(f, "/"), []);
    });

    it("unlink of a copied-up file replaces it with a whiteout (RENAME_WHITEOUT)", () => {
      f = makeUnion([{}, { b: "b" }], undefined, "overlay");
      f.fs.setattr("/b", { mode: 0o600 });
      f.fs.unlink("/b");
      assert.ok(isCharWhiteout(path.join(f.dirs[0] as string, "b")));
    });

    it("create over a whiteout swaps the new file in", () => {
      f = makeUnion([{}, { b: "old" }], undefined, "overlay");
      f.fs.unlink("/b");
      const { fh } = f.fs.create("/b", O_WRONLY | O_CREAT, 0o644, root);
      f.fs.write(fh, Buffer.from("new"), 0n);
      f.fs.release(fh);
      const r = f.fs.open("/b", O_RDONLY);
      assert.equal(f.fs.read(r, 10, 0n).toString(), "new");
      f.fs.release(r);
      assert.ok(fs.lstatSync(path.join(f.dirs[0] as string, "b")).isFile());
    });

    it("rmdir then mkdir: the new directory is opaque by xattr", () => {
      f = makeUnion([{}, { d: { x: "1" } }], undefined, "overlay");
      f.fs.unlink("/d/x");
      f.fs.rmdir("/d");
      assert.ok(isCharWhiteout(path.join(f.dirs[0] as string, "d")));
      f.fs.mkdir("/d", 0o755, root);
      assert.deepEqual(names(f, "/d"), []);
      const v = fs.readdirSync(path.join(f.dirs[0] as string, "d"));
      assert.deepEqual(v, []);
    });

    for (const [ns, other] of [
      ["user", "trusted"],
      ["trusted", "user"],
    ] as const) {
      it(`a ${ns}.* mount${ns === "user" ? " (unprivileged)" : ""} marks a new opaque dir ${ns}.overlay.opaque=y`, () => {
        f = makeUnion([{}, { d: { x: "1" } }], undefined, "overlay", ns);
        f.fs.unlink("/d/x");
        f.fs.rmdir("/d");
        f.fs.mkdir("/d", 0o755, root);
        const d = path.join(f.dirs[0] as string, "d");
        assert.equal(tryLgetxattr(d, `${ns}.overlay.opaque`)?.toString(), "y");
        assert.equal(tryLgetxattr(d, `${other}.overlay.opaque`), undefined);
        assert.deepEqual(fs.readdirSync(d), []);
        f.remount();
        assert.deepEqual(names(f, "/d"), []);
      });
    }

    it("rename of a lower file leaves a whiteout at the old name", () => {
      f = makeUnion([{}, { a: "A" }], undefined, "overlay");
      f.fs.rename("/a", "/b", 0);
      assert.ok(isCharWhiteout(path.join(f.dirs[0] as string, "a")));
      assert.deepEqual(names(f, "/"), ["b"]);
    });

    it("rename of a directory onto a whited-out name", () => {
      f = makeUnion([{ n: { mine: "1" } }, { d: { low: "2" } }], undefined, "overlay");
      f.fs.unlink("/d/low");
      f.fs.rmdir("/d");
      f.fs.rename("/n", "/d", 0);
      assert.deepEqual(names(f, "/"), ["d"]);
      assert.deepEqual(names(f, "/d"), ["mine"]);
    });

    it("RENAME_EXCHANGE of two lower files", () => {
      f = makeUnion([{}, { a: "A", b: "B" }], undefined, "overlay");
      f.fs.rename("/a", "/b", RENAME_EXCHANGE);
      const r = f.fs.open("/a", O_RDONLY);
      assert.equal(f.fs.read(r, 10, 0n).toString(), "B");
      f.fs.release(r);
    });
  });
});
