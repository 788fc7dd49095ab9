import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createUnion } from "../../../src/unionfs";
import { ACL_ACCESS, ACL_DEFAULT, creationMode } from "../../../src/unionfs/acl";
import { lsetxattr, tryLgetxattr } from "../../../src/sys/libc";
import type { Caller } from "../../../src/unionfs/types";
import { makeUnion, type Fixture, umaskZeroInSuite } from "./fixture";
import { code } from "../../helpers/errno";

const { O_CREAT, O_EXCL, O_WRONLY } = fs.constants;

/** ACL xattr tags (linux/posix_acl_xattr.h). */
const Tag = { USER_OBJ: 1, USER: 2, GROUP_OBJ: 4, GROUP: 8, MASK: 0x10, OTHER: 0x20 } as const;
const UNDEFINED_ID = 0xffffffff;

/** A raw system.posix_acl_* value: version 2, then (tag, perm, id) entries. */
function aclValue(entries: [number, number, number?][]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id ?? UNDEFINED_ID, 8 + 8 * i);
  });
  return b;
}

/** u::rwx, u:1000:rwx, g::r-x, m::rwx, o::--- */
const DEFAULT_ACL = aclValue([
  [Tag.USER_OBJ, 7],
  [Tag.USER, 7, 1000],
  [Tag.GROUP_OBJ, 5],
  [Tag.MASK, 7],
  [Tag.OTHER, 0],
]);

function supportsAcls(dir: string): boolean {
  try {
    lsetxattr(dir, ACL_DEFAULT, DEFAULT_ACL, 0);
    fs.rmSync(dir, { recursive: true });
    return true;
  } catch {
    return false;
  }
}

const mode = (p: string): number => fs.lstatSync(p).mode & 0o7777;

describe("creationMode", () => {
  it("applies the umask when the transport left it and no default ACL rules", () => {
    assert.equal(creationMode(0o666, 0o027, false), 0o640);
    assert.equal(creationMode(0o777, 0o022, false), 0o755);
    assert.equal(creationMode(0o4777, 0o077, false), 0o4700, "set-id bits are not the umask's business");
  });

  it("leaves the mode alone with a default ACL on the parent, or when already masked", () => {
    assert.equal(creationMode(0o666, 0o077, true), 0o666);
    assert.equal(creationMode(0o644, undefined, false), 0o644);
  });
});

describe("union core: umask and default ACLs", () => {
  let f: Fixture | undefined;
  const as = (umask: number): Caller => ({ uid: 0, gid: 0, pid: 1, umask });

  umaskZeroInSuite();
  before(function () {
    if (!supportsAcls(fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-acl-")))) this.skip();
  });
  afterEach(() => {
    f?.cleanup();
    f = undefined;
  });

  /** A union whose lower branch has `d` (default ACL) with `x` and `sub` in it, and a plain `p`. */
  function aclUnion(whiteout: "aufs" | "overlay" = "aufs"): Fixture {
    const u = makeUnion([{}, { d: { x: "x", sub: {} }, p: {} }], undefined, whiteout);
    lsetxattr(path.join(u.dirs[1] as string, "d"), ACL_DEFAULT, DEFAULT_ACL, 0);
    return u;
  }
  const up = (u: Fixture, rel: string): string => path.join(u.dirs[0] as string, rel);

  it("applies the caller's umask where the parent has no default ACL", () => {
    f = aclUnion();
    f.fs.mkdir("/p/dir", 0o777, as(0o027));
    f.fs.release(f.fs.create("/p/file", O_WRONLY | O_CREAT | O_EXCL, 0o666, as(0o027)).fh);
    f.fs.mknod("/p/node", 0o100666, 0, as(0o022));
    f.fs.mknod("/p/fifo", 0o010666, 0, as(0o077));
    assert.equal(mode(up(f, "p/dir")), 0o750);
    assert.equal(mode(up(f, "p/file")), 0o640);
    assert.equal(mode(up(f, "p/node")), 0o644);
    assert.equal(mode(up(f, "p/fifo")), 0o600);
    assert.equal(tryLgetxattr(up(f, "p/file"), ACL_ACCESS), undefined);
  });

  it("does not apply it where the parent (a lower dir) has a default ACL: the ACL is inherited", () => {
    f = aclUnion();
    f.fs.release(f.fs.create("/d/new", O_WRONLY | O_CREAT | O_EXCL, 0o666, as(0o077)).fh);
    f.fs.mkdir("/d/newdir", 0o777, as(0o077));
    assert.deepEqual(tryLgetxattr(up(f, "d"), ACL_DEFAULT), DEFAULT_ACL, "copy-up keeps the default ACL");
    // The file: u::rw- (mode), mask rw- (mode's group bits and the ACL mask), o::--- ; umask ignored.
    assert.equal(mode(up(f, "d/new")), 0o660);
    assert.notEqual(tryLgetxattr(up(f, "d/new"), ACL_ACCESS), undefined);
    assert.equal(mode(up(f, "d/newdir")), 0o770);
    assert.deepEqual(tryLgetxattr(up(f, "d/newdir"), ACL_DEFAULT), DEFAULT_ACL);
  });

  it("inherits the default ACL also when the new object is built in the work dir", () => {
    f = aclUnion("overlay");
    f.fs.unlink("/d/x"); // leaves an overlay whiteout: a new x is built in the work dir and swapped in
    f.fs.rmdir("/d/sub"); // a new sub is opaque: built in the work dir
    f.fs.release(f.fs.create("/d/x", O_WRONLY | O_CREAT | O_EXCL, 0o666, as(0o077)).fh);
    f.fs.mkdir("/d/sub", 0o777, as(0o077));
    assert.equal(mode(up(f, "d/x")), 0o660);
    assert.notEqual(tryLgetxattr(up(f, "d/x"), ACL_ACCESS), undefined);
    assert.equal(mode(up(f, "d/sub")), 0o770);
    assert.deepEqual(tryLgetxattr(up(f, "d/sub"), ACL_DEFAULT), DEFAULT_ACL);
    assert.deepEqual(fs.readdirSync(up(f, ".wh..wh.unionfs")), [], "no staging dir left behind");
  });

  it("reads ACLs of lower files, and answers none (ENODATA) where there is none", () => {
    f = aclUnion();
    assert.deepEqual(f.fs.getxattr("/d", ACL_DEFAULT), DEFAULT_ACL);
    assert.equal(f.fs.listxattr("/d").includes(ACL_DEFAULT), true);
    assert.equal(f.fs.getxattr("/p", ACL_ACCESS), undefined);
    assert.equal(f.fs.getxattr("/p", ACL_DEFAULT), undefined);
    assert.equal(
      code(() => f?.fs.getxattr("/missing", ACL_ACCESS)),
      "ENOENT",
    );
    assert.equal(fs.existsSync(up(f, "d")), false, "reading copies nothing up");
  });

  it("answers none (ENODATA), not EOPNOTSUPP, for ACLs when xattrs are off", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-acl-"));
    const [a, b] = [path.join(root, "a"), path.join(root, "b")];
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    const ops = createUnion({
      branches: [
        { path: a, mode: "rw" },
        { path: b, mode: "ro" },
      ],
      whiteout: "aufs",
      noXattrs: true,
    });
    try {
      assert.equal(ops.getxattr("/", ACL_ACCESS), undefined);
      assert.equal(
        code(() => ops.getxattr("/", "user.x")),
        "EOPNOTSUPP",
      );
    } finally {
      ops.destroy();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("drops a default ACL the work dir inherited from the writable branch", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-acl-"));
    const [a, b] = [path.join(root, "a"), path.join(root, "b")];
    fs.mkdirSync(a);
    fs.mkdirSync(path.join(b, "q"), { recursive: true });
    fs.writeFileSync(path.join(b, "q", "f"), "f");
    fs.chmodSync(path.join(b, "q", "f"), 0o600);
    lsetxattr(a, ACL_DEFAULT, DEFAULT_ACL, 0);
    const ops = createUnion({
      branches: [
        { path: a, mode: "rw" },
        { path: b, mode: "ro" },
      ],
      whiteout: "aufs",
    });
    try {
      assert.equal(tryLgetxattr(path.join(a, ".wh..wh.unionfs"), ACL_DEFAULT), undefined);
      ops.setattr("/q/f", { mode: 0o600 }); // copies q and f up through the work dir
      assert.equal(tryLgetxattr(path.join(a, "q", "f"), ACL_ACCESS), undefined, "a copy inherits nothing");
      assert.equal(tryLgetxattr(path.join(a, "q"), ACL_DEFAULT), undefined);
      assert.equal(mode(path.join(a, "q", "f")), 0o600);
    } finally {
      ops.destroy();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
