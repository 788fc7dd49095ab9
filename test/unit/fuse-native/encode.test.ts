/**
 * What the fuse-native addon reads back: stat/statvfs word arrays (32-bit inode numbers, millisecond
 * times) and libfuse's option string. These pin the binding's limits as the union reports them.
 */
import { strict as assert } from "node:assert";
import {
  FIXED_OPTIONS,
  MAX_OPTIONS_BYTES,
  direntArray,
  foldIno,
  fsnameOption,
  mountOptions,
  msOf,
  nsOfMs,
  statArray,
  statfsArray,
  u64,
} from "../../../src/fuse/native/encode";
import type { Attr, StatFs } from "../../../src/unionfs/types";

function attr(over: Partial<Attr> = {}): Attr {
  return {
    ino: 42n,
    size: 5n,
    blocks: 8n,
    atimeNs: 1_600_000_000_123_456_789n,
    mtimeNs: 1_500_000_000_987_654_321n,
    ctimeNs: 1_400_000_000_000_000_001n,
    mode: 0o100644,
    nlink: 2,
    uid: 1000,
    gid: 100,
    rdev: 0,
    blksize: 4096,
    ...over,
  };
}

const word64 = (a: Uint32Array, i: number): number => u64(a[i] ?? 0, a[i + 1] ?? 0);

describe("fuse-native encoding", () => {
  describe("stat words (fuse-native populate_stat layout)", () => {
    it("puts every field where the addon reads it", () => {
      const a = statArray(attr({ size: 0x1_2345_6789n, blocks: 0x2_0000_0001n, rdev: 259 }));
      assert.equal(a.length, 18);
      assert.equal(a[0], 0o100644);
      assert.equal(a[1], 1000);
      assert.equal(a[2], 100);
      assert.equal(word64(a, 3), 0x1_2345_6789);
      assert.equal(a[6], 2);
      assert.equal(a[7], 42);
      assert.equal(a[8], 259);
      assert.equal(a[9], 4096);
      assert.equal(word64(a, 10), 0x2_0000_0001);
    });

    it("pins: times are whole milliseconds (nanoseconds are cut off)", () => {
      const a = statArray(attr());
      assert.equal(word64(a, 12), 1_600_000_000_123);
      assert.equal(word64(a, 14), 1_500_000_000_987);
      assert.equal(word64(a, 16), 1_400_000_000_000);
      assert.equal(msOf(999_999n), 0);
      assert.equal(nsOfMs(1_500_000_000_987), 1_500_000_000_987_000_000n);
    });

    it("pins: times before 1970 become 0 (the addon's words are unsigned)", () => {
      assert.equal(word64(statArray(attr({ mtimeNs: -5_000_000_000n })), 14), 0);
    });

    it("pins: inode numbers are 32 bits: low word XOR high word, so a layer tag in the top bits survives", () => {
      assert.equal(foldIno(42n), 42);
      assert.equal(foldIno(0xffff_ffffn), 0xffff_ffff);
      assert.equal(foldIno((1n << 32n) + 5n), 4);
      // two layers on different filesystems with the same raw inode number (the core tags bit 56+)
      const a = foldIno((1n << 56n) ^ 1234n);
      const b = foldIno((2n << 56n) ^ 1234n);
      assert.notEqual(a, b);
      assert.equal(a, 1234 ^ (1 << 24));
      assert.equal(statArray(attr({ ino: (1n << 56n) ^ 1234n }))[7], a);
      assert.equal(foldIno(-1n), 0); // all 64 bits set
    });

    it("readdir entries carry the type (d_type) and the folded inode number (d_ino)", () => {
      const a = direntArray(0o040000, (3n << 56n) ^ 7n);
      assert.equal(a[0], 0o040000);
      assert.equal(a[7], 7 ^ (3 << 24));
    });
  });

  describe("statvfs words", () => {
    const fs0: StatFs = {
      bsize: 4096,
      frsize: 4096,
      blocks: 1000n,
      bfree: 500n,
      bavail: 400n,
      files: 100n,
      ffree: 50n,
      namelen: 255,
    };

    it("passes small counts through", () => {
      assert.deepEqual([...statfsArray(fs0)], [4096, 4096, 1000, 500, 400, 100, 50, 50, 0, 0, 255]);
    });

    it("scales block counts past 2^32 into a bigger fragment size, keeping the byte totals", () => {
      const big = { ...fs0, blocks: 6n << 32n, bfree: 4n << 32n, bavail: 2n << 32n, files: 1n << 40n };
      const a = statfsArray(big);
      const frsize = a[1] ?? 0;
      assert.equal(frsize, 4096 * 8);
      assert.equal(BigInt(a[2] ?? 0) * BigInt(frsize), (6n << 32n) * 4096n);
      assert.equal(BigInt(a[3] ?? 0) * BigInt(frsize), (4n << 32n) * 4096n);
      assert.equal(a[5], 0xffff_ffff); // inode counts are clamped
    });
  });

  describe("libfuse options", () => {
    it("mounts as fuse.unionfs-ts with the core's inode numbers, kernel permission checks, no allow_other", () => {
      const o = mountOptions("A:B");
      assert.equal(o, `-ofsname=A:B,${FIXED_OPTIONS.join(",")}`);
      for (const want of ["subtype=unionfs-ts", "use_ino", "default_permissions", "nonempty", "big_writes"]) {
        assert.ok(o.split(",").includes(want), want);
      }
      assert.ok(!o.includes("allow_other"));
    });

    it("escapes the fsname for libfuse's option parser and drops control characters", () => {
      assert.equal(fsnameOption("a,b\\c\nd", 100), "a\\,b\\\\c?d");
      assert.equal(fsnameOption("", 100), "unionfs-ts");
    });

    it("shortens a long fsname so the whole string fits the addon's 1024-byte buffer", () => {
      const o = mountOptions(`${"é,".repeat(400)}end`);
      assert.ok(Buffer.byteLength(o) <= MAX_OPTIONS_BYTES, `${Buffer.byteLength(o)} bytes`);
      assert.ok(o.endsWith(FIXED_OPTIONS.join(",")));
      assert.ok(!/[^\\]\\$/.test(o.split(",subtype=")[0] ?? ""), "no dangling escape");
    });
  });
});
