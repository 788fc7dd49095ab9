import { strict as assert } from "node:assert";
import { buildMountOptions, splitOptionList } from "../../../src/cli/options";
import { IdMap, OVERFLOW_ID } from "../../../src/unionfs/idmap";

const cwd = "/storage";

function bad(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (e: Error) => e.name === "UsageError" && pattern.test(e.message) && !e.message.includes("\n"),
  );
}

describe("mount options", () => {
  describe("splitOptionList", () => {
    it("ignores empty items and trailing commas, keeps quoted commas", () => {
      assert.deepEqual(splitOptionList('a=1,,b,context="x,y",'), ["a=1", "b", 'context="x,y"']);
    });
    it("rejects an unbalanced quote", () => bad(() => splitOptionList('context="x'), /unbalanced quote/));
  });

  describe("fuse-overlayfs form", () => {
    it("lowerdir, upperdir, workdir with an empty item and volatile; leftmost lower is the top lower", () => {
      const m = buildMountOptions(["merged"], ["lowerdir=l/A:l/B:l/C,upperdir=U,workdir=W,,volatile"], cwd);
      assert.deepEqual(
        m.config.branches.map((b) => [b.path, b.mode]),
        [
          ["/storage/U", "rw"],
          ["/storage/l/A", "ro"],
          ["/storage/l/B", "ro"],
          ["/storage/l/C", "ro"],
        ],
      );
      assert.equal(m.config.workdir, "/storage/W");
      assert.equal(m.config.whiteout, "overlay");
      assert.equal(m.mountpoint, "/storage/merged");
      assert.deepEqual(m.warnings, []);
    });

    it("trailing comma", () => {
      const m = buildMountOptions(["/m"], ["lowerdir=/a,upperdir=/u,workdir=/w,"], cwd);
      assert.equal(m.config.branches.length, 2);
    });

    it("read-only: lowerdir only, also with two lowers", () => {
      assert.deepEqual(
        buildMountOptions(["/m"], ["lowerdir=/d:/l2:/l3"], cwd).config.branches.map((b) => b.mode),
        ["ro", "ro", "ro"],
      );
      assert.equal(buildMountOptions(["/m"], ["lowerdir=/d:/empty"], cwd).config.branches.length, 2);
    });

    it("options after the mountpoint, repeated -o, and an fsname before the mountpoint", () => {
      const m = buildMountOptions(["overlay", "/m"], ["lowerdir=/a", "upperdir=/u,workdir=/w"], cwd);
      assert.equal(m.fsname, "overlay");
      assert.equal(m.config.branches[0]?.path, "/u");
    });

    it("uid/gid mappings, squashing, xattr and fsync switches, context with commas", () => {
      const m = buildMountOptions(
        ["/m"],
        [
          'lowerdir=/a,upperdir=/u,workdir=/w,uidmapping=0:1000:1:1:110000:65536,gidmapping=0:1000:1,squash_to_gid=5,noxattrs=1,fsync=0,context="system_u:object_r:container_file_t:s0:c1,c2",xattr_permissions=2',
        ],
        cwd,
      );
      assert.deepEqual(m.config.uidMap, [
        { disk: 0, shown: 1000, count: 1 },
        { disk: 1, shown: 110000, count: 65536 },
      ]);
      assert.equal(m.config.squashGid, 5);
      assert.equal(m.config.noXattrs, true);
      assert.equal(m.config.noFsync, true);
      assert.deepEqual(m.warnings, []);
    });

    it("podman's mappings with a leading ':'", () => {
      const m = buildMountOptions(
        ["/m"],
        ["lowerdir=/a,uidmapping=:0:100000:65536,gidmapping=:0:100000:65536"],
        cwd,
      );
      assert.deepEqual(m.config.uidMap, [{ disk: 0, shown: 100000, count: 65536 }]);
    });

    it("unknown options warn and are ignored", () => {
      const m = buildMountOptions(["/m"], ["lowerdir=/a,frobnicate=3"], cwd);
      assert.deepEqual(m.warnings, ["unknown mount option 'frobnicate' ignored"]);
    });

    it("malformed: empty lowerdir, empty lower entry, upper without work, bad mapping", () => {
      bad(() => buildMountOptions(["/m"], ["lowerdir="], cwd), /lowerdir/);
      bad(() => buildMountOptions(["/m"], ["lowerdir=/a::/b"], cwd), /empty directory/);
      bad(() => buildMountOptions(["/m"], ["lowerdir=/a,upperdir=/u"], cwd), /needs workdir/);
      bad(() => buildMountOptions(["/m"], ["lowerdir=/a,uidmapping=0:1"], cwd), /bad uidmapping/);
      bad(() => buildMountOptions(["/m"], ["lowerdir=/a,squash_to_uid=x"], cwd), /needs an id/);
    });
  });

  describe("branch-list form", () => {
    it("A:B C with -o workdir and ro", () => {
      const m = buildMountOptions(["A:B", "C"], ["workdir=W"], cwd);
      assert.equal(m.config.whiteout, "aufs");
      assert.equal(m.config.workdir, "/storage/W");
      const ro = buildMountOptions(["A:B", "C"], ["ro"], cwd);
      assert.deepEqual(
        ro.config.branches.map((b) => b.mode),
        ["ro", "ro"],
      );
    });
    it("unknown options are errors, and lowerdir cannot be mixed in", () => {
      bad(() => buildMountOptions(["A:B", "C"], ["frobnicate"], cwd), /unknown mount option 'frobnicate'/);
      bad(() => buildMountOptions(["A", "C"], ["upperdir=/u"], cwd), /cannot be combined/);
      bad(() => buildMountOptions(["C"], [], cwd), /expected BRANCHES MOUNTPOINT/);
    });
    it("regression: backslash escapes ':' and '=' in branch names; 128 read-only and one rw at most", () => {
      const m = buildMountOptions(["a\\=b:c\\:d=ro:e\\\\f", "C"], [], cwd);
      assert.deepEqual(
        m.config.branches.map((b) => [b.path, b.mode]),
        [
          ["/storage/a=b", "rw"],
          ["/storage/c:d", "ro"],
          ["/storage/e\\f", "ro"],
        ],
      );
      const many = (n: number): string => Array.from({ length: n }, (_, i) => `L${i}`).join(":");
      assert.equal(buildMountOptions([many(129), "C"], [], cwd).config.branches.length, 129);
      bad(() => buildMountOptions([many(130), "C"], [], cwd), /too many branches: 130/);
    });

    it("regression: generic mount flags are kept, in order, for the kernel mount (they were ignored)", () => {
      const m = buildMountOptions(["A:B", "C"], ["nosuid,nodev,noexec", "noatime,ro"], cwd);
      assert.deepEqual(m.flags, ["nosuid", "nodev", "noexec", "noatime", "ro"]);
      assert.deepEqual(
        m.config.branches.map((b) => b.mode),
        ["ro", "ro"],
      );
      const o = buildMountOptions(["C"], ["lowerdir=L,upperdir=U,workdir=W,strictatime,sync,dirsync"], cwd);
      assert.deepEqual(o.flags, ["strictatime", "sync", "dirsync"]);
      bad(() => buildMountOptions(["A:B", "C"], ["nosuid=1"], cwd), /unknown mount option 'nosuid'/);
    });

    it("regression: -o lowerdir=…,upperdir=…,workdir=…,ro mounts read-only (workdir= was refused)", () => {
      const o = buildMountOptions(["C"], ["lowerdir=L,upperdir=U,workdir=W,ro"], cwd);
      assert.deepEqual(
        o.config.branches.map((b) => b.mode),
        ["ro", "ro"],
      );
      assert.equal(o.config.workdir, undefined);
      assert.deepEqual(buildMountOptions(["C"], ["ro,lowerdir=L,upperdir=U,workdir=W"], cwd).flags, ["ro"]);
    });

    it("timeout= sets the kernel cache timeout in seconds; a bad value is refused", () => {
      assert.equal(buildMountOptions(["A:B", "C"], [], cwd).config.cacheTimeout, undefined);
      assert.equal(buildMountOptions(["A:B", "C"], ["timeout=1.5"], cwd).config.cacheTimeout, 1.5);
      assert.equal(buildMountOptions(["merged"], ["lowerdir=L,timeout=0"], cwd).config.cacheTimeout, 0);
      bad(() => buildMountOptions(["A:B", "C"], ["timeout=soon"], cwd), /timeout= needs a number/);
      bad(() => buildMountOptions(["A:B", "C"], ["timeout=-1"], cwd), /timeout= needs a number/);
    });

    it("io_uring asks for FUSE over io_uring; io_uring=0 does not; any other value is refused", () => {
      const uring = (opts: string[], pos = ["A:B", "C"]): boolean | undefined =>
        buildMountOptions(pos, opts, cwd).config.ioUring;
      assert.equal(uring([]), undefined);
      assert.equal(uring(["io_uring"]), true);
      assert.equal(uring(["io_uring=1"]), true);
      assert.equal(uring(["io_uring=0"]), false);
      assert.equal(uring(["lowerdir=L,upperdir=U,workdir=W,io_uring"], ["merged"]), true);
      for (const v of ["no", "off", "false", "", "2"])
        bad(
          () => buildMountOptions(["A:B", "C"], [`io_uring=${v}`], cwd),
          /io_uring takes no value \(or 1 or 0\)/,
        );
    });
  });

  describe("IdMap", () => {
    it("maps disk ids to shown ids and back; unmapped ids overflow", () => {
      const m = new IdMap([{ disk: 0, shown: 1000, count: 1 }]);
      assert.equal(m.toShown(0), 1000);
      assert.equal(m.toShown(7), OVERFLOW_ID);
      assert.equal(m.toDisk(1000), 0);
      assert.equal(new IdMap([], 42).toShown(3), 42);
    });
  });
});
