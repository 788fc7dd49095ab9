/**
 * The fuse-native bridge against a scripted UnionOps: each op gets the raw arguments fuse-native 2.2.6
 * hands its `_op_*` methods and must answer through `signal` the way the addon reads the answer back.
 */
import { strict as assert } from "node:assert";
import { constants } from "node:fs";
import { errnoOf as errno, fsError } from "../../../src/errors";
import {
  LOCALS_ATIME_OFFSET,
  LOCALS_MTIME_OFFSET,
  LOCALS_OP_OFFSET,
  NativeBridge,
  OP_UTIMENS,
  recoverTimes,
} from "../../../src/fuse/native/bridge";
import { u64 } from "../../../src/fuse/native/encode";
import { bstr } from "../../../src/sys/bytes";
import type { Attr, Caller, DirEntry, SetAttrRequest, StatFs, UnionOps } from "../../../src/unionfs/types";
import { attrFor } from "../../helpers/attr";

const { O_APPEND, O_CREAT, O_RDWR, O_WRONLY } = constants;

/** Attributes of a 3-byte file or a directory, as the scripted core reports them. */
const attrOf = (mode: number, ino: bigint): Attr => attrFor(mode, ino, 3n);

/** A scripted core: records every call; `fail` makes the named method throw. */
class Fake implements UnionOps {
  calls: unknown[][] = [];
  fail = new Map<string, unknown>();
  entries: DirEntry[] = [];
  xattr = Buffer.from("0123456789");
  data = Buffer.from("hello world");

  private rec(name: string, ...args: unknown[]): void {
    this.calls.push([name, ...args]);
    const err = this.fail.get(name);
    if (err !== undefined) throw err;
  }
  getattr(path: string, fh?: number): Attr {
    this.rec("getattr", path, fh);
    return attrOf(path === "/" ? 0o040755 : 0o100644, 7n);
  }
  readlink(path: string): string {
    this.rec("readlink", path);
    return "caf\xc3\xa9";
  }
  access(path: string, mask: number): void {
    this.rec("access", path, mask);
  }
  mknod(path: string, mode: number, rdev: number, caller: Caller): Attr {
    this.rec("mknod", path, mode, rdev, caller);
    return attrOf(mode, 8n);
  }
  mkdir(path: string, mode: number, caller: Caller): Attr {
    this.rec("mkdir", path, mode, caller);
    return attrOf(0o040000 | mode, 9n);
  }
  symlink(target: string, path: string, caller: Caller): Attr {
    this.rec("symlink", target, path, caller);
    return attrOf(0o120777, 10n);
  }
  link(existing: string, newPath: string): Attr {
    this.rec("link", existing, newPath);
    return attrOf(0o100644, 7n);
  }
  unlink(path: string): void {
    this.rec("unlink", path);
  }
  rmdir(path: string): void {
    this.rec("rmdir", path);
  }
  rename(from: string, to: string, flags: number): void {
    this.rec("rename", from, to, flags);
  }
  setattr(path: string, req: SetAttrRequest, fh?: number): Attr {
    this.rec("setattr", path, req, fh);
    return attrOf(0o100644, 7n);
  }
  open(path: string, flags: number): number {
    this.rec("open", path, flags);
    return 5;
  }
  create(path: string, flags: number, mode: number, caller: Caller): { fh: number; attr: Attr } {
    this.rec("create", path, flags, mode, caller);
    return { fh: 6, attr: attrOf(mode, 11n) };
  }
  read(fh: number, length: number, position: bigint): Buffer {
    this.rec("read", fh, length, position);
    return this.data.subarray(Number(position), Number(position) + length);
  }
  write(fh: number, data: Buffer, position: bigint): number {
    this.rec("write", fh, data.toString("latin1"), position);
    return data.length;
  }
  flush(fh: number): void {
    this.rec("flush", fh);
  }
  fsync(fh: number, datasync: boolean): void {
    this.rec("fsync", fh, datasync);
  }
  release(fh: number): void {
    this.rec("release", fh);
  }
  fallocate(): void {
    this.rec("fallocate");
  }
  lseek(): bigint {
    return 0n;
  }
  opendir(path: string): number {
    this.rec("opendir", path);
    return 3;
  }
  readdir(dh: number): readonly DirEntry[] {
    this.rec("readdir", dh);
    return this.entries;
  }
  releasedir(dh: number): void {
    this.rec("releasedir", dh);
  }
  statfs(path: string): StatFs {
    this.rec("statfs", path);
    return {
      bsize: 4096,
      frsize: 4096,
      blocks: 10n,
      bfree: 5n,
      bavail: 4n,
      files: 3n,
      ffree: 2n,
      namelen: 255,
    };
  }
  setxattr(path: string, name: string, value: Buffer, flags: number): void {
    this.rec("setxattr", path, name, value.toString("latin1"), flags);
  }
  getxattr(path: string, name: string): Buffer {
    this.rec("getxattr", path, name);
    return this.xattr;
  }
  listxattr(path: string): string[] {
    this.rec("listxattr", path);
    return ["user.a", "user.\xff"];
  }
  removexattr(path: string, name: string): void {
    this.rec("removexattr", path, name);
  }
  destroy(): void {
    this.rec("destroy");
  }
}

const CALLER: Caller = { uid: 1234, gid: 56, pid: 0 };

function setup(): { fake: Fake; bridge: NativeBridge; unknown: unknown[] } {
  const fake = new Fake();
  const unknown: unknown[] = [];
  const bridge = new NativeBridge(fake, { caller: CALLER, onUnknown: (e) => unknown.push(e) });
  return { fake, bridge, unknown };
}

/** Runs one op and returns what it signalled (exactly once). */
function call(bridge: NativeBridge, name: string, ...args: unknown[]): unknown[] {
  const got: unknown[][] = [];
  bridge.dispatch(name, (res, ...values) => got.push([res, ...values]), args);
  assert.equal(got.length, 1, `${name} must answer exactly once`);
  return got[0] as unknown[];
}

describe("fuse-native bridge", () => {
  it("implements every op the binding offers except opendir/releasedir (readdir is one shot)", () => {
    const { bridge } = setup();
    const want = [
      "getattr",
      "fgetattr",
      "access",
      "statfs",
      "readdir",
      "readlink",
      "open",
      "create",
      "read",
      "write",
      "flush",
      "fsync",
      "fsyncdir",
      "release",
      "truncate",
      "ftruncate",
      "utimens",
      "chmod",
      "chown",
      "mknod",
      "mkdir",
      "unlink",
      "rmdir",
      "rename",
      "link",
      "symlink",
      "setxattr",
      "getxattr",
      "listxattr",
      "removexattr",
    ];
    assert.deepEqual([...bridge.names].sort(), [...want].sort());
  });

  it("turns the binding's UTF-8 text into byte strings for the core", () => {
    const { fake, bridge } = setup();
    const [res, st] = call(bridge, "getattr", "/café");
    assert.equal(res, 0);
    assert.ok(st instanceof Uint32Array);
    assert.deepEqual(fake.calls[0], ["getattr", "/caf\xc3\xa9", undefined]);
  });

  it("fgetattr passes the file handle (fuse-native's public API drops it)", () => {
    const { fake, bridge } = setup();
    call(bridge, "fgetattr", "/f", 9);
    assert.deepEqual(fake.calls[0], ["getattr", "/f", 9]);
  });

  describe("errors", () => {
    it("answer the negative errno of every code the core throws", () => {
      const { fake, bridge } = setup();
      for (const code of ["ENOENT", "ENOTEMPTY", "EXDEV", "ENODATA", "EROFS", "ENAMETOOLONG", "EOPNOTSUPP"]) {
        fake.fail.set("rmdir", fsError(code));
        assert.deepEqual(call(bridge, "rmdir", "/d"), [-errno(code)], code);
      }
    });

    it("answer EIO (not the binding's EPERM) for errors without an errno, and report them", () => {
      const { fake, bridge, unknown } = setup();
      const boom = new Error("boom");
      fake.fail.set("unlink", boom);
      assert.deepEqual(call(bridge, "unlink", "/f"), [-errno("EIO")]);
      assert.deepEqual(unknown, [boom]);
      fake.fail.set("unlink", Object.assign(new Error("odd"), { code: "ENOTACODE" }));
      assert.deepEqual(call(bridge, "unlink", "/f"), [-errno("EIO")]);
    });

    it("hand a lent buffer back even when the op fails (the addon aborts without it)", () => {
      const { fake, bridge } = setup();
      fake.fail.set("read", fsError("EBADF"));
      const buf = Buffer.alloc(4);
      assert.deepEqual(call(bridge, "read", "/f", 5, buf, 4, 0, 0), [-errno("EBADF"), 0, buf.buffer]);
      fake.fail.set("write", fsError("ENOSPC"));
      assert.deepEqual(call(bridge, "write", "/f", 5, buf, 4, 0, 0), [-errno("ENOSPC"), 0, buf.buffer]);
      fake.fail.set("getxattr", fsError("ENODATA"));
      assert.deepEqual(call(bridge, "getxattr", "/f", "user.x", buf, 0), [-errno("ENODATA"), buf.buffer]);
      fake.fail.set("setxattr", fsError("ENOTSUP"));
      assert.deepEqual(call(bridge, "setxattr", "/f", "user.x", buf, 0, 0), [-errno("ENOTSUP"), buf.buffer]);
      fake.fail.set("listxattr", fsError("EACCES"));
      assert.deepEqual(call(bridge, "listxattr", "/f", buf), [-errno("EACCES"), buf.buffer]);
    });

    it("answer ENOSYS for an op the bridge does not have", () => {
      const { bridge } = setup();
      assert.deepEqual(call(bridge, "opendir", "/"), [-errno("ENOSYS")]);
    });
  });

  describe("files", () => {
    it("open passes the kernel's flags and answers the core's handle", () => {
      const { fake, bridge } = setup();
      assert.deepEqual(call(bridge, "open", "/f", O_WRONLY | O_APPEND), [0, 5]);
      assert.deepEqual(fake.calls[0], ["open", "/f", O_WRONLY | O_APPEND]);
    });

    it("create opens O_CREAT|O_RDWR (the binding drops the flags) as the daemon's user", () => {
      const { fake, bridge } = setup();
      assert.deepEqual(call(bridge, "create", "/n", 0o100600), [0, 6]);
      assert.deepEqual(fake.calls[0], ["create", "/n", O_CREAT | O_RDWR, 0o100600, CALLER]);
    });

    it("read copies into the kernel's buffer and answers the count; offsets come as two words", () => {
      const { fake, bridge } = setup();
      const buf = Buffer.alloc(8, 0x2e);
      assert.deepEqual(call(bridge, "read", "/f", 5, buf, 5, 6, 0), [5, 0, buf.buffer]);
      assert.equal(buf.toString("latin1", 0, 5), "world");
      call(bridge, "read", "/f", 5, Buffer.alloc(1), 1, 1, 2);
      assert.deepEqual(fake.calls[1], ["read", 5, 1, 1n + 2n * 0x1_0000_0000n]);
    });

    it("write hands the core exactly len bytes at the offset", () => {
      const { fake, bridge } = setup();
      const buf = Buffer.from("abcdef");
      assert.deepEqual(call(bridge, "write", "/f", 5, buf, 3, 10, 0), [3, 0, buf.buffer]);
      assert.deepEqual(fake.calls[0], ["write", 5, "abc", 10n]);
    });

    it("flush, fsync (datasync flag), release go to the handle; truncate/ftruncate to setattr", () => {
      const { fake, bridge } = setup();
      call(bridge, "flush", "/f", 5);
      call(bridge, "fsync", "/f", 1, 5);
      call(bridge, "release", "/f", 5);
      call(bridge, "truncate", "/f", 0, 1);
      call(bridge, "ftruncate", "/f", 5, 7, 0);
      assert.deepEqual(fake.calls, [
        ["flush", 5],
        ["fsync", 5, true],
        ["release", 5],
        ["setattr", "/f", { size: 0x1_0000_0000n }, undefined],
        ["setattr", "/f", { size: 7n }, 5],
      ]);
      assert.deepEqual(call(bridge, "fsyncdir", "/", 0, 0), [0]);
    });
  });

  describe("names and attributes", () => {
    it("mkdir, mknod, symlink (target first) create as the daemon's user; link and rename by path", () => {
      const { fake, bridge } = setup();
      call(bridge, "mkdir", "/d", 0o755);
      call(bridge, "mknod", "/p", 0o010644, 0);
      call(bridge, "symlink", "../target", "/l");
      call(bridge, "link", "/f", "/g");
      call(bridge, "rename", "/a", "/b");
      assert.deepEqual(fake.calls, [
        ["mkdir", "/d", 0o755, CALLER],
        ["mknod", "/p", 0o010644, 0, CALLER],
        ["symlink", "../target", "/l", CALLER],
        ["link", "/f", "/g"],
        ["rename", "/a", "/b", 0],
      ]);
    });

    it("chmod and chown (-1 leaves an id alone) go to setattr", () => {
      const { fake, bridge } = setup();
      call(bridge, "chmod", "/f", 0o100600);
      call(bridge, "chown", "/f", 0xffff_ffff, 7);
      call(bridge, "chown", "/f", 3, 0xffff_ffff);
      assert.deepEqual(
        fake.calls.map((c) => c[2]),
        [{ mode: 0o100600 }, { gid: 7 }, { uid: 3 }],
      );
    });

    it("readlink answers text; readdir lists . and .. then the core's entries with type and inode", () => {
      const { fake, bridge } = setup();
      assert.deepEqual(call(bridge, "readlink", "/l"), [0, "café"]);
      fake.entries = [
        { name: "a", type: 0o100000, ino: 21n },
        { name: "caf\xc3\xa9", type: 0o040000, ino: 22n },
        { name: "bad\xff", type: 0o100000, ino: 23n },
      ];
      const [res, names, stats] = call(bridge, "readdir", "/d");
      assert.equal(res, 0);
      // pinned: a name that is not UTF-8 reaches the kernel with U+FFFD in it (and is then not found)
      assert.deepEqual(names, [".", "..", "a", "café", "bad\ufffd"]);
      const s = stats as Uint32Array[];
      assert.equal(s.length, 5);
      assert.deepEqual(
        s.map((x) => [x[0], x[7]]),
        [
          [0o100644, 7], // the fake says "/d" is a file; only the shape matters here
          [0o040755, 7],
          [0o100000, 21],
          [0o040000, 22],
          [0o100000, 23],
        ],
      );
      assert.deepEqual(
        fake.calls.filter((c) => c[0] !== "getattr").map((c) => c[0]),
        ["readlink", "opendir", "readdir", "releasedir"],
      );
    });

    it("readdir releases the dir handle when reading fails", () => {
      const { fake, bridge } = setup();
      fake.fail.set("readdir", fsError("EIO"));
      assert.deepEqual(call(bridge, "readdir", "/d"), [-errno("EIO")]);
      assert.deepEqual(fake.calls.at(-1), ["releasedir", 3]);
    });

    it("statfs and access", () => {
      const { fake, bridge } = setup();
      const [res, words] = call(bridge, "statfs", "/");
      assert.equal(res, 0);
      assert.deepEqual([...(words as Uint32Array)], [4096, 4096, 10, 5, 4, 3, 2, 2, 0, 0, 255]);
      assert.deepEqual(call(bridge, "access", "/f", 4), [0]);
      assert.deepEqual(fake.calls.at(-1), ["access", "/f", 4]);
    });
  });

  describe("utimens (fuse-native passes the atime in the mtime slot)", () => {
    function locals(op: number, atime: number, mtime: number): Buffer {
      const b = Buffer.alloc(256);
      b.writeUInt32LE(op, LOCALS_OP_OFFSET);
      b.writeBigUInt64LE(BigInt(atime), LOCALS_ATIME_OFFSET);
      b.writeBigUInt64LE(BigInt(mtime), LOCALS_MTIME_OFFSET);
      return b;
    }
    const A = 1_600_000_000_123;
    const M = 1_500_000_000_456;
    const words = (ms: number): [number, number] => [ms % 0x1_0000_0000, Math.floor(ms / 0x1_0000_0000)];

    it("recovers the real mtime from the addon's per-thread locals", () => {
      const { fake, bridge } = setup();
      bridge.locals = locals(OP_UTIMENS, A, M);
      call(bridge, "utimens", "/f", ...words(A), ...words(A));
      assert.deepEqual(fake.calls[0], [
        "setattr",
        "/f",
        { atime: BigInt(A) * 1_000_000n, mtime: BigInt(M) * 1_000_000n },
        undefined,
      ]);
    });

    it("pins the fallback: without trustworthy locals, mtime is what the binding says (the atime)", () => {
      assert.deepEqual(recoverTimes(undefined, A), { atimeMs: A, mtimeMs: A, recovered: false });
      assert.equal(recoverTimes(locals(OP_UTIMENS + 1, A, M), A).mtimeMs, A, "another op's locals");
      assert.equal(recoverTimes(locals(OP_UTIMENS, A + 1, M), A).mtimeMs, A, "atime does not match");
      assert.equal(recoverTimes(Buffer.alloc(16), A).mtimeMs, A, "too short");
      assert.equal(u64(...words(A)), A);
    });
  });

  describe("xattrs", () => {
    it("getxattr: size 0 asks for the length, a short buffer is ERANGE, else the value is copied", () => {
      const { bridge } = setup();
      const empty = Buffer.alloc(0);
      assert.deepEqual(call(bridge, "getxattr", "/f", "user.x", empty, 0), [10, empty.buffer]);
      const small = Buffer.alloc(4);
      assert.deepEqual(call(bridge, "getxattr", "/f", "user.x", small, 0), [-errno("ERANGE"), small.buffer]);
      const big = Buffer.alloc(16);
      assert.deepEqual(call(bridge, "getxattr", "/f", "user.x", big, 0), [10, big.buffer]);
      assert.equal(big.toString("latin1", 0, 10), "0123456789");
    });

    it("listxattr writes the names' bytes, NUL-terminated, with the same size rules", () => {
      const { bridge } = setup();
      const empty = Buffer.alloc(0);
      assert.deepEqual(call(bridge, "listxattr", "/f", empty), [14, empty.buffer]);
      assert.deepEqual(call(bridge, "listxattr", "/f", Buffer.alloc(3))[0], -errno("ERANGE"));
      const buf = Buffer.alloc(20);
      assert.equal(call(bridge, "listxattr", "/f", buf)[0], 14);
      assert.equal(bstr(buf.subarray(0, 14)), "user.a\0user.\xff\0");
    });

    it("setxattr copies the value and passes the flags; removexattr by name", () => {
      const { fake, bridge } = setup();
      const v = Buffer.from("val");
      assert.deepEqual(call(bridge, "setxattr", "/f", "user.é", v, 0, 1), [0, v.buffer]);
      call(bridge, "removexattr", "/f", "user.é");
      assert.deepEqual(fake.calls, [
        ["setxattr", "/f", "user.\xc3\xa9", "val", 1],
        ["removexattr", "/f", "user.\xc3\xa9"],
      ]);
    });
  });

  it("logs one line per op when debugging", () => {
    const fake = new Fake();
    const lines: string[] = [];
    const bridge = new NativeBridge(fake, { caller: CALLER, log: (l) => lines.push(l) });
    fake.fail.set("unlink", fsError("ENOENT"));
    call(bridge, "unlink", "/gone");
    call(bridge, "open", "/f", 0);
    assert.deepEqual(lines, [`unlink /gone -> -${errno("ENOENT")} (ENOENT)`, "open /f -> ok 5"]);
  });
});
