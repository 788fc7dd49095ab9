/**
 * src/layer/tar/layer.ts: a tar archive as a read-only Layer (lstat, listings, links, xattrs, reads, the
 * refusals), and the union core over tar layers in-process: whiteouts and opaque directories inside
 * archives, hard links, copy-up into the writable branch. No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { codeOf } from "../../../../src/errors";
import { TarLayer, TAR_DEV } from "../../../../src/layer/tar";
import { createUnion } from "../../../../src/unionfs";
import type { UnionOps } from "../../../../src/unionfs/types";
import { makeTempDir, removeTree } from "../../../helpers/tmp";
import { writeArchive, type TarEntry } from "../../../helpers/tar";

const O_RDONLY = fs.constants.O_RDONLY;
const O_RDWR = fs.constants.O_RDWR;

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return codeOf(err);
  }
  return undefined;
}

describe("tar layer: the Layer", () => {
  let dir: string;
  const layers: TarLayer[] = [];
  beforeEach(() => (dir = makeTempDir("tarlayer")));
  afterEach(() => {
    for (const l of layers.splice(0)) l.close();
    removeTree(dir);
  });

  function layer(entries: TarEntry[], gzip = false, index = 2): TarLayer {
    const p = writeArchive(path.join(dir, `l${layers.length}.tar${gzip ? ".gz" : ""}`), entries, gzip);
    const l = new TarLayer(p, { index, env: { XDG_CACHE_HOME: path.join(dir, "cache") } });
    layers.push(l);
    return l;
  }

  const ENTRIES: TarEntry[] = [
    { name: "etc/", type: "5", mode: 0o755 },
    { name: "etc/passwd", data: "root:x:0:0\n", mode: 0o644, mtime: 1000 },
    { name: "etc/link", type: "1", linkname: "etc/passwd" },
    { name: "bin/sh", type: "2", linkname: "/bin/busybox" },
    { name: "dev/null", type: "3", devmajor: 1, devminor: 3 },
    { name: "x", data: "y", pax: { "SCHILY.xattr.user.k": "v", "SCHILY.xattr.security.capability": "c" } },
  ];

  for (const gzip of [false, true]) {
    it(`answers lstat, readdir, readlink, xattrs and reads (${gzip ? "gzip" : "plain"})`, () => {
      const l = layer(ENTRIES, gzip);
      assert.equal(l.dev, TAR_DEV + 2n);
      const st = l.lstat("/etc/passwd");
      assert.deepEqual(
        [st.mode, st.size, st.nlink, st.mtimeNs, st.dev],
        [0o100644n, 11n, 2n, 1000_000_000_000n, l.dev],
      );
      assert.equal(l.lstat("/etc/link").ino, st.ino);
      assert.equal(l.lstat("").ino, 1n);
      assert.equal(l.lstat("/bin/sh").size, BigInt("/bin/busybox".length));
      assert.equal(l.lstat("/dev/null").rdev, 259n);
      assert.equal(l.tryLstat("/nope"), undefined);
      assert.equal(
        code(() => l.lstat("/nope")),
        "ENOENT",
      );
      assert.equal(
        code(() => l.lstat("/x/y")),
        "ENOTDIR",
      );
      assert.deepEqual(
        l.readdir("/etc").map((e) => [e.name, e.type]),
        [
          ["passwd", 0o100000],
          ["link", 0o100000],
        ],
      );
      assert.equal(
        code(() => l.readdir("/x")),
        "ENOTDIR",
      );
      assert.equal(l.readlink("/bin/sh"), "/bin/busybox");
      assert.equal(
        code(() => l.readlink("/x")),
        "EINVAL",
      );
      assert.deepEqual(l.listxattr("/x"), ["user.k", "security.capability"]);
      assert.equal(l.getxattr("/x", "user.k")?.toString(), "v");
      assert.equal(l.tryGetxattr("/x", "user.none"), undefined);
      assert.equal(l.getxattr("/x", "user.none"), undefined);
      const f = l.openAccess("/etc/passwd", O_RDONLY);
      assert.equal(f.fd, undefined);
      assert.equal(f.read(100, 4n).toString(), ":x:0:0\n");
      assert.equal(f.read(100, 11n).length, 0);
      const buf = Buffer.alloc(4);
      assert.equal(f.readInto(buf, 4n), 4);
      assert.equal(buf.toString(), ":x:0");
      assert.equal(f.readInto(buf, 11n), 0);
      assert.equal(f.fstat().ino, st.ino);
      f.close();
      assert.equal(
        code(() => l.openAccess("/x", O_RDWR)),
        "EROFS",
      );
      assert.equal(
        code(() => l.openAccess("/etc", O_RDONLY)),
        "EISDIR",
      );
      assert.ok(l.statfs().blocks > 0n);
    });
  }

  it("opens from the saved index the second time, with the same inode numbers", () => {
    const first = layer(ENTRIES, true);
    assert.equal(first.source, "scanned");
    const again = new TarLayer(first.origin, { index: 2, env: { XDG_CACHE_HOME: path.join(dir, "cache") } });
    layers.push(again);
    assert.equal(again.source, "saved");
    for (const p of ["", "/etc", "/etc/passwd", "/x"]) assert.deepEqual(again.lstat(p), first.lstat(p));
    assert.equal(again.openAccess("/x", O_RDONLY).read(10, 0n).toString(), "y");
  });
});

describe("tar layer: the union over tar layers (in-process)", () => {
  let dir: string;
  let ops: UnionOps | undefined;
  beforeEach(() => (dir = makeTempDir("tarunion")));
  afterEach(() => {
    ops?.destroy();
    ops = undefined;
    removeTree(dir);
  });

  function archive(name: string, entries: TarEntry[], gzip: boolean): string {
    return writeArchive(path.join(dir, name), entries, gzip);
  }

  function names(u: UnionOps, p: string): string[] {
    const dh = u.opendir(p);
    try {
      return u
        .readdir(dh)
        .map((e) => e.name)
        .filter((n) => n !== "." && n !== "..")
        .sort();
    } finally {
      u.releasedir(dh);
    }
  }

  function read(u: UnionOps, p: string): string {
    const fh = u.open(p, O_RDONLY);
    try {
      return u.read(fh, 1 << 20, 0n).toString();
    } finally {
      u.release(fh);
    }
  }

  it("honours whiteouts and opaque directories inside archives, and copies up from them", () => {
    const upper = path.join(dir, "upper");
    fs.mkdirSync(upper);
    const base = archive(
      "base.tar.gz",
      [
        { name: "a", data: "base a" },
        { name: "b", data: "base b" },
        { name: "d/old", data: "old" },
        { name: "keep/k", data: "k" },
        { name: "h1", data: "linked", mode: 0o640 },
        { name: "h2", type: "1", linkname: "h1" },
      ],
      true,
    );
    const mid = archive(
      "mid.tar",
      [
        { name: ".wh.a", data: "" },
        { name: "d/.wh..wh..opq", data: "" },
        { name: "d/new", data: "new" },
        { name: "b", data: "mid b" },
      ],
      false,
    );
    ops = createUnion({
      branches: [
        { path: upper, mode: "rw" },
        { path: mid, mode: "ro" },
        { path: base, mode: "ro" },
      ],
      whiteout: "aufs",
    });
    const u = ops;
    assert.deepEqual(names(u, "/"), ["b", "d", "h1", "h2", "keep"]);
    assert.deepEqual(names(u, "/d"), ["new"]);
    assert.equal(read(u, "/b"), "mid b");
    assert.equal(u.getattr("/h1").ino, u.getattr("/h2").ino);
    assert.equal(u.getattr("/h1").nlink, 2);
    // A write copies the file up from the archive; the archive is untouched.
    const before = fs.readFileSync(base);
    const fh = u.open("/keep/k", O_RDWR);
    u.write(fh, Buffer.from("K!"), 0n);
    u.release(fh);
    assert.equal(fs.readFileSync(path.join(upper, "keep/k"), "utf8"), "K!");
    assert.equal(read(u, "/keep/k"), "K!");
    u.setattr("/h1", { mode: 0o600 });
    assert.equal(fs.statSync(path.join(upper, "h1")).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(path.join(upper, "h1"), "utf8"), "linked");
    u.unlink("/b");
    assert.deepEqual(names(u, "/"), ["d", "h1", "h2", "keep"]);
    assert.ok(fs.readFileSync(base).equals(before));
  });
});
