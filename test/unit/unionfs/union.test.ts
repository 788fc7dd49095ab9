import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { RENAME_EXCHANGE, RENAME_NOREPLACE } from "../../../src/unionfs/types";
import { lsetxattr, tryLgetxattr } from "../../../src/sys/libc";
import { listTree, makeUnion, root, type Fixture, readAll, umaskZeroInSuite, names } from "./fixture";
import { code } from "../../helpers/errno";

const { O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_TRUNC, O_CREAT, O_EXCL } = fs.constants;

describe("union core", () => {
  let f: Fixture;
  umaskZeroInSuite();
  afterEach(() => f?.cleanup());

  it("shows the classic A:B demo: a, b and A's x", () => {
    f = makeUnion([
      { a: "a", x: "x from A" },
      { b: "b", x: "x from B" },
    ]);
    assert.deepEqual(names(f, "/"), ["a", "b", "x"]);
    assert.equal(readAll(f, "/x"), "x from A");
  });

  it("honours aufs whiteouts and opaque dirs in lower layers", () => {
    f = makeUnion([
      {},
      { ".wh.gone": "", d: { ".wh..wh..opq": "", mine: "1" } },
      { gone: "g", d: { hidden: "h" } },
    ]);
    assert.deepEqual(names(f, "/"), ["d"]);
    assert.deepEqual(names(f, "/d"), ["mine"]);
    assert.equal(
      code(() => f.fs.getattr("/gone")),
      "ENOENT",
    );
    assert.equal(
      code(() => f.fs.getattr("/d/hidden")),
      "ENOENT",
    );
    const lookup = f.fs.lookup?.bind(f.fs);
    assert.ok(lookup, "the union answers lookups");
    for (const miss of ["/gone", "/d/hidden", "/nothing", "/d/mine/below"]) {
      assert.equal(lookup(miss), undefined, `lookup ${miss} is a miss, not a throw`);
    }
    assert.deepEqual(lookup("/d/mine"), f.fs.getattr("/d/mine"));
    assert.deepEqual(lookup("/d"), f.fs.getattr("/d"));
  });

  it("never shows or accepts .wh. names", () => {
    f = makeUnion([{ ".wh.x": "" }, { x: "1" }]);
    assert.deepEqual(names(f, "/"), []);
    assert.equal(
      code(() => f.fs.getattr("/.wh.x")),
      "ENOENT",
    );
    assert.equal(
      code(() => f.fs.mkdir("/.wh.y", 0o755, root)),
      "EPERM",
    );
  });

  it("copies up on append and keeps the original bytes, leaving the lower file untouched", () => {
    f = makeUnion([{}, { d: { b: "original" } }]);
    fs.chmodSync(path.join(f.dirs[1] as string, "d/b"), 0o640);
    const before = fs.statSync(path.join(f.dirs[1] as string, "d/b"), { bigint: true });
    const fh = f.fs.open("/d/b", O_WRONLY | O_APPEND);
    f.fs.write(fh, Buffer.from("+more"), 0n);
    f.fs.release(fh);
    assert.equal(readAll(f, "/d/b"), "original+more");
    assert.equal(fs.readFileSync(path.join(f.dirs[0] as string, "d/b"), "utf8"), "original+more");
    assert.equal(fs.readFileSync(path.join(f.dirs[1] as string, "d/b"), "utf8"), "original");
    const up = fs.statSync(path.join(f.dirs[0] as string, "d/b"), { bigint: true });
    assert.equal(Number(up.mode) & 0o7777, 0o640);
    assert.equal(up.uid, before.uid);
  });

  it("copy-up by chmod keeps the lower file's nanosecond mtime and atime", () => {
    f = makeUnion([{}, { b: "x" }]);
    const lower = path.join(f.dirs[1] as string, "b");
    const before = fs.statSync(lower, { bigint: true });
    f.fs.setattr("/b", { mode: 0o600 });
    const up = fs.statSync(path.join(f.dirs[0] as string, "b"), { bigint: true });
    assert.equal(up.mtimeNs, before.mtimeNs);
    assert.equal(up.atimeNs, before.atimeNs);
  });

  it("copies up on a partial write in the middle of the file", () => {
    f = makeUnion([{}, { b: "0123456789" }]);
    const fh = f.fs.open("/b", O_RDWR);
    f.fs.write(fh, Buffer.from("xy"), 4n);
    f.fs.release(fh);
    assert.equal(readAll(f, "/b"), "0123xy6789");
    assert.equal(fs.readFileSync(path.join(f.dirs[1] as string, "b"), "utf8"), "0123456789");
  });

  it("O_TRUNC open copies metadata only", () => {
    f = makeUnion([{}, { b: "old" }]);
    const fh = f.fs.open("/b", O_WRONLY | O_TRUNC);
    f.fs.write(fh, Buffer.from("new"), 0n);
    f.fs.release(fh);
    assert.equal(readAll(f, "/b"), "new");
  });

  it("keeps nanosecond times across copy-up", () => {
    f = makeUnion([{}, { b: "x" }]);
    f.fs.setattr("/b", { mtime: 1_234_567_891_123_456_789n, atime: 1_000_000_000_000_000_001n });
    const a = f.fs.getattr("/b");
    assert.equal(a.mtimeNs, 1_234_567_891_123_456_789n);
    assert.equal(a.atimeNs, 1_000_000_000_000_000_001n);
  });

  it("unlink of a lower file leaves a whiteout, and the name can be created again", () => {
    f = makeUnion([{}, { b: "b" }]);
    f.fs.unlink("/b");
    assert.deepEqual(names(f, "/"), []);
    assert.ok(fs.existsSync(path.join(f.dirs[0] as string, ".wh.b")));
    const { fh } = f.fs.create("/b", O_WRONLY | O_CREAT | O_EXCL, 0o644, root);
    f.fs.write(fh, Buffer.from("new"), 0n);
    f.fs.release(fh);
    assert.equal(readAll(f, "/b"), "new");
    assert.ok(!fs.existsSync(path.join(f.dirs[0] as string, ".wh.b")));
  });

  it("unlink of an upper-only file leaves no whiteout", () => {
    f = makeUnion([{ u: "u" }, {}]);
    f.fs.unlink("/u");
    assert.deepEqual(
      Object.keys(listTree(f.dirs[0] as string)).filter((n) => !n.startsWith(".wh..wh.")),
      [],
    );
  });

  it("rmdir of a merged dir: ENOTEMPTY with visible children, ok once only whiteouts remain", () => {
    f = makeUnion([{ d: { up: "1" } }, { d: { low: "2" } }]);
    assert.equal(
      code(() => f.fs.rmdir("/d")),
      "ENOTEMPTY",
    );
    f.fs.unlink("/d/up");
    f.fs.unlink("/d/low");
    f.fs.rmdir("/d");
    assert.deepEqual(names(f, "/"), []);
    assert.ok(fs.existsSync(path.join(f.dirs[0] as string, ".wh.d")));
  });

  it("a directory handle lists what is there at its first readdir, then keeps that snapshot", () => {
    f = makeUnion([{ d: { up: "1" } }, { d: { low: "2" } }]);
    const dh = f.fs.opendir("/d");
    f.fs.unlink("/d/up");
    assert.deepEqual(
      f.fs.readdir(dh).map((e) => e.name),
      ["low"],
    );
    f.fs.unlink("/d/low");
    assert.deepEqual(
      f.fs.readdir(dh).map((e) => e.name),
      ["low"],
    );
    f.fs.releasedir(dh);
  });

  it("regression: readdir of a directory removed after opendir lists nothing (as getdents does)", () => {
    f = makeUnion([{ d: {} }, { d: { low: "2" } }]);
    const dh = f.fs.opendir("/d");
    f.fs.unlink("/d/low");
    f.fs.rmdir("/d");
    assert.deepEqual(f.fs.readdir(dh), []);
    f.fs.releasedir(dh);
  });

  it("mkdir over a deleted lower dir is opaque", () => {
    f = makeUnion([{}, { d: { low: "2" } }]);
    f.fs.unlink("/d/low");
    f.fs.rmdir("/d");
    f.fs.mkdir("/d", 0o755, root);
    assert.deepEqual(names(f, "/d"), []);
    assert.ok(fs.existsSync(path.join(f.dirs[0] as string, "d/.wh..wh..opq")));
  });

  it("creating in a lower-only dir copies the parents up, not opaque", () => {
    f = makeUnion([{}, { p: { q: { old: "o" } } }]);
    f.fs.create("/p/q/new", O_WRONLY | O_CREAT, 0o600, { uid: 1234, gid: 99, pid: 1 });
    assert.deepEqual(names(f, "/p/q"), ["new", "old"]);
    const st = fs.statSync(path.join(f.dirs[0] as string, "p/q/new"));
    assert.equal(st.uid, 1234);
    assert.equal(st.gid, 99);
    assert.equal(st.mode & 0o777, 0o600);
  });

  it("renames a lower file: copy-up, whiteout at the old name", () => {
    f = makeUnion([{}, { a: "A", d: {} }]);
    f.fs.rename("/a", "/d/b", 0);
    assert.deepEqual(names(f, "/"), ["d"]);
    assert.equal(readAll(f, "/d/b"), "A");
    assert.ok(fs.existsSync(path.join(f.dirs[0] as string, ".wh.a")));
    assert.equal(fs.readFileSync(path.join(f.dirs[1] as string, "a"), "utf8"), "A");
  });

  it("rename with RENAME_NOREPLACE fails on an existing target", () => {
    f = makeUnion([{ a: "1" }, { b: "2" }]);
    assert.equal(
      code(() => f.fs.rename("/a", "/b", RENAME_NOREPLACE)),
      "EEXIST",
    );
  });

  it("renames a directory that is in a lower layer: merged view moves, old name gone, lower untouched", () => {
    f = makeUnion([{ d: { up: "U", sub: { s1: "1" } } }, { d: { low: "L", sub: { s2: "2" } } }]);
    const lowerBefore = listTree(f.dirs[1] as string);
    f.fs.rename("/d", "/e", 0);
    assert.deepEqual(names(f, "/"), ["e"]);
    assert.deepEqual(names(f, "/e"), ["low", "sub", "up"]);
    assert.deepEqual(names(f, "/e/sub"), ["s1", "s2"]);
    assert.equal(readAll(f, "/e/low"), "L");
    assert.equal(
      code(() => f.fs.getattr("/d")),
      "ENOENT",
    );
    assert.deepEqual(listTree(f.dirs[1] as string), lowerBefore);
    assert.ok(fs.existsSync(path.join(f.dirs[0] as string, "e/.wh..wh..opq")));
  });

  it("renames a lower directory back to its old name", () => {
    f = makeUnion([{}, { d: { low: "L" } }]);
    f.fs.rename("/d", "/e", 0);
    f.fs.rename("/e", "/d", 0);
    assert.deepEqual(names(f, "/"), ["d"]);
    assert.deepEqual(names(f, "/d"), ["low"]);
  });

  it("RENAME_EXCHANGE swaps a lower file and a lower directory", () => {
    f = makeUnion([{}, { a: "file", d: { x: "1" } }]);
    f.fs.rename("/a", "/d", RENAME_EXCHANGE);
    assert.equal(readAll(f, "/d"), "file");
    assert.deepEqual(names(f, "/a"), ["x"]);
  });

  it("rename of an upper-only dir over a deleted lower dir makes it opaque", () => {
    f = makeUnion([{ n: { mine: "1" } }, { d: { low: "2" } }]);
    f.fs.unlink("/d/low");
    f.fs.rmdir("/d");
    f.fs.rename("/n", "/d", 0);
    assert.deepEqual(names(f, "/d"), ["mine"]);
  });

  it("hard link to a lower file copies it up once and shares the inode", () => {
    f = makeUnion([{}, { a: "A" }]);
    f.fs.link("/a", "/b");
    assert.equal(f.fs.getattr("/a").ino, f.fs.getattr("/b").ino);
    assert.equal(f.fs.getattr("/a").nlink, 2);
  });

  it("symlinks and chmod/chown/truncate copy up", () => {
    f = makeUnion([{}, { a: "hello" }]);
    f.fs.symlink("a", "/l", root);
    assert.equal(f.fs.readlink("/l"), "a");
    f.fs.setattr("/a", { mode: 0o600 });
    assert.equal(f.fs.getattr("/a").mode & 0o777, 0o600);
    f.fs.setattr("/a", { size: 2n });
    assert.equal(readAll(f, "/a"), "he");
    assert.equal(fs.readFileSync(path.join(f.dirs[1] as string, "a"), "utf8"), "hello");
  });

  it("xattrs are copied up and bookkeeping ones are hidden", () => {
    f = makeUnion([{}, { a: "1" }]);
    const lower = path.join(f.dirs[1] as string, "a");
    lsetxattr(lower, "user.k", Buffer.from("v"), 0);
    lsetxattr(lower, "trusted.overlay.opaque", Buffer.from("y"), 0);
    assert.deepEqual(f.fs.listxattr("/a"), ["user.k"]);
    f.fs.setattr("/a", { mode: 0o600 });
    assert.equal(f.fs.getxattr("/a", "user.k")?.toString(), "v");
    assert.equal(f.fs.getxattr("/a", "trusted.overlay.opaque"), undefined);
  });

  it("the user.* forms of the markers (rootless) are bookkeeping too: hidden, not copied, not settable", () => {
    f = makeUnion([{}, { a: "1" }], undefined, "aufs", "user");
    const lower = path.join(f.dirs[1] as string, "a");
    lsetxattr(lower, "user.k", Buffer.from("v"), 0);
    lsetxattr(lower, "user.overlay.opaque", Buffer.from("y"), 0);
    lsetxattr(lower, "user.unionfs.origin", Buffer.alloc(8), 0);
    assert.deepEqual(f.fs.listxattr("/a"), ["user.k"]);
    assert.equal(
      code(() => f.fs.setxattr("/a", "user.unionfs.origin", Buffer.alloc(8), 0)),
      "EPERM",
    );
    f.fs.setattr("/a", { mode: 0o600 });
    const copy = path.join(f.dirs[0] as string, "a");
    assert.equal(tryLgetxattr(copy, "user.overlay.opaque"), undefined);
    assert.equal(tryLgetxattr(copy, "user.unionfs.origin")?.readBigUInt64LE(), f.fs.getattr("/a").ino);
  });

  it("a union with no rw branch is read-only", () => {
    f = makeUnion([{ a: "1" }, { b: "2" }], ["ro", "ro"]);
    assert.equal(readAll(f, "/b"), "2");
    assert.equal(
      code(() => f.fs.open("/a", O_WRONLY)),
      "EROFS",
    );
    assert.equal(
      code(() => f.fs.unlink("/a")),
      "EROFS",
    );
    assert.equal(
      code(() => f.fs.mkdir("/n", 0o755, root)),
      "EROFS",
    );
  });

  it("names are bytes: a non-UTF-8 name round-trips", () => {
    f = makeUnion([{}, {}]);
    const name = "/caf\xe9\xff"; // latin1 byte string: bytes 0xe9 0xff, invalid UTF-8
    f.fs.mkdir(name, 0o755, root);
    assert.deepEqual(names(f, "/"), [name.slice(1)]);
    const onDisk = fs.readdirSync(f.dirs[0] as string, { encoding: "buffer" }).map((b) => b.toString("hex"));
    assert.ok(onDisk.includes(Buffer.from(name.slice(1), "latin1").toString("hex")));
  });

  it("st_ino does not change when a file is copied up, nor when its lower dir is renamed", () => {
    f = makeUnion([{}, { d: { a: "1", b: "2" } }]);
    const ino = f.fs.getattr("/d/a").ino;
    const dirIno = f.fs.getattr("/d").ino;
    f.fs.setattr("/d/a", { mode: 0o600 });
    assert.equal(f.fs.getattr("/d/a").ino, ino);
    assert.equal(f.fs.getattr("/d").ino, dirIno);
    const inoB = f.fs.getattr("/d/b").ino;
    f.fs.rename("/d", "/e", 0);
    assert.equal(f.fs.getattr("/e/a").ino, ino);
    assert.equal(f.fs.getattr("/e/b").ino, inoB);
    assert.notEqual(ino, inoB);
  });

  it("a read-only handle opened before a copy-up sees writes made through another handle", () => {
    f = makeUnion([{}, { a: "old data" }]);
    const ro = f.fs.open("/a", O_RDONLY);
    const rw = f.fs.open("/a", O_RDWR);
    f.fs.write(rw, Buffer.from("NEW"), 0n);
    f.fs.release(rw);
    assert.equal(f.fs.read(ro, 100, 0n).toString(), "NEW data");
    f.fs.release(ro);
  });

  it("readInto reads what read does into the caller's buffer, following a copy-up, 0 at end of file", () => {
    f = makeUnion([{}, { a: "old data" }]);
    const ro = f.fs.open("/a", O_RDONLY);
    const buf = Buffer.alloc(6);
    assert.equal(f.fs.readInto?.(ro, buf, 4n), 4);
    assert.equal(buf.subarray(0, 4).toString(), "data");
    const rw = f.fs.open("/a", O_RDWR);
    f.fs.write(rw, Buffer.from("NEW"), 0n);
    f.fs.release(rw);
    assert.equal(f.fs.readInto?.(ro, buf, 0n), 6);
    assert.equal(buf.toString(), "NEW da");
    assert.equal(f.fs.readInto?.(ro, buf, 8n), 0);
    f.fs.release(ro);
  });

  it("readFd: the descriptor stays open until release, a copy-up moves the epoch, the handle follows", () => {
    f = makeUnion([{}, { a: "old data" }]);
    const ro = f.fs.open("/a", O_RDONLY);
    const epoch = f.fs.copyUpEpoch?.();
    const lowerFd = f.fs.readFd?.(ro) as number;
    const buf = Buffer.alloc(8);
    assert.equal(fs.readSync(lowerFd, buf, 0, 8, 0), 8);
    assert.equal(buf.toString(), "old data");
    const rw = f.fs.open("/a", O_RDWR);
    assert.notEqual(f.fs.copyUpEpoch?.(), epoch, "the copy-up moved the epoch");
    f.fs.write(rw, Buffer.from("NEW"), 0n);
    f.fs.release(rw);
    const upperFd = f.fs.readFd?.(ro) as number;
    assert.notEqual(upperFd, lowerFd, "the handle follows the copy");
    assert.equal(fs.readSync(upperFd, buf, 0, 8, 0), 8);
    assert.equal(buf.toString(), "NEW data");
    // Another thread may still be reading the descriptor it was handed: it stays open until release.
    assert.equal(fs.readSync(lowerFd, buf, 0, 8, 0), 8);
    assert.equal(buf.toString(), "old data");
    f.fs.release(ro);
    assert.throws(() => fs.fstatSync(lowerFd), /EBADF/);
    assert.throws(() => fs.fstatSync(upperFd), /EBADF/);
  });

  it("regression: a handle opened before a copy-up reports the copy's size (reads are not cut short)", () => {
    f = makeUnion([{}, { f: "old contents" }]);
    const ro = f.fs.open("/f", O_RDONLY);
    const rw = f.fs.open("/f", O_WRONLY | O_TRUNC);
    f.fs.write(rw, Buffer.from("new contents, longer"), 0n);
    f.fs.release(rw);
    assert.equal(f.fs.getattr("/f", ro).size, 20n);
    assert.equal(f.fs.read(ro, 64, 0n).toString(), "new contents, longer");
    f.fs.release(ro);
  });

  it("regression: ftruncate/fchmod/futimens on an open file whose name was unlinked", () => {
    f = makeUnion([{}, {}]);
    const { fh } = f.fs.create("/n", O_RDWR | O_CREAT, 0o644, root);
    f.fs.write(fh, Buffer.from("data"), 0n);
    f.fs.unlink("/n");
    const a = f.fs.setattr("/n", { size: 2n, mode: 0o600, mtime: 5_000_000_007n }, fh);
    assert.equal(a.size, 2n);
    assert.equal(a.mode & 0o777, 0o600);
    assert.equal(a.mtimeNs, 5_000_000_007n);
    f.fs.release(fh);
  });

  it("regression: names of 252-255 bytes in a lower layer can be looked up, deleted and made again", () => {
    const long = "L".repeat(253);
    f = makeUnion([{}, { [long]: "x" }]);
    assert.equal(f.fs.getattr("/" + long).size, 1n);
    f.fs.unlink("/" + long);
    assert.equal(
      code(() => f.fs.getattr("/" + long)),
      "ENOENT",
    );
    assert.deepEqual(names(f, "/"), []);
    const { fh } = f.fs.create("/" + long, O_WRONLY | O_CREAT, 0o644, root);
    f.fs.release(fh);
    assert.deepEqual(names(f, "/"), [long]);
  });

  it("regression: mknod of a 0/0 character device is refused (it would be a whiteout)", () => {
    f = makeUnion([{}, {}]);
    assert.equal(
      code(() => f.fs.mknod("/z", 0o020644, 0, root)),
      "EPERM",
    );
    assert.deepEqual(
      fs.readdirSync(f.dirs[0] as string).filter((n) => !n.startsWith(".wh.")),
      [],
    );
  });
});
