/**
 * Wire codecs: exact byte offsets of every reply struct against linux/fuse.h 7.38, request decoding,
 * and INIT negotiation.
 */
import { strict as assert } from "node:assert";
import type { Attr } from "../../../src/unionfs/types";
import {
  Reader,
  attrOut,
  decodeInHeader,
  decodeSetattr,
  entryOut,
  lseekOut,
  openOut,
  outHeader,
  sizeOut,
  splitNs,
  statfsOut,
  timeNs,
} from "../../../src/fuse/kernel/codec";
import { decodeInit, encodeInitOut, negotiate } from "../../../src/fuse/kernel/init";
import { Fattr, Init, Init2, MAX_PAGES, MAX_WRITE, PROTO_MINOR } from "../../../src/fuse/kernel/protocol";
import { Body, request } from "./requests";

const attr: Attr = {
  ino: 0x1122334455667788n,
  size: 5_000_000_000n,
  blocks: 9_765_632n,
  atimeNs: 1_700_000_000_123_456_789n,
  mtimeNs: -1_500_000_000n, // 1969-12-31T23:59:58.5
  ctimeNs: 42n,
  mode: 0o100644,
  nlink: 3,
  uid: 1000,
  gid: 100,
  rdev: (8 << 8) | 1,
  blksize: 4096,
};

/** Checks struct fuse_attr (88 bytes) at `at`. */
function checkAttr(b: Buffer, at: number): void {
  assert.equal(b.readBigUInt64LE(at + 0), attr.ino, "ino");
  assert.equal(b.readBigUInt64LE(at + 8), attr.size, "size");
  assert.equal(b.readBigUInt64LE(at + 16), attr.blocks, "blocks");
  assert.equal(b.readBigInt64LE(at + 24), 1_700_000_000n, "atime");
  assert.equal(b.readBigInt64LE(at + 32), -2n, "mtime");
  assert.equal(b.readBigInt64LE(at + 40), 0n, "ctime");
  assert.equal(b.readUInt32LE(at + 48), 123_456_789, "atimensec");
  assert.equal(b.readUInt32LE(at + 52), 500_000_000, "mtimensec");
  assert.equal(b.readUInt32LE(at + 56), 42, "ctimensec");
  assert.equal(b.readUInt32LE(at + 60), 0o100644, "mode");
  assert.equal(b.readUInt32LE(at + 64), 3, "nlink");
  assert.equal(b.readUInt32LE(at + 68), 1000, "uid");
  assert.equal(b.readUInt32LE(at + 72), 100, "gid");
  assert.equal(b.readUInt32LE(at + 76), (8 << 8) | 1, "rdev");
  assert.equal(b.readUInt32LE(at + 80), 4096, "blksize");
  assert.equal(b.readUInt32LE(at + 84), 0, "flags");
}

describe("fuse codec: replies", () => {
  it("fuse_out_header: len, negative errno, unique", () => {
    const b = outHeader(16, 2, 0xfedcba9876543210n);
    assert.equal(b.length, 16);
    assert.equal(b.readUInt32LE(0), 16);
    assert.equal(b.readInt32LE(4), -2);
    assert.equal(b.readBigUInt64LE(8), 0xfedcba9876543210n);
  });

  it("fuse_entry_out: 128 bytes, timeouts split, attr at 40", () => {
    const b = entryOut(2 ** 40 + 5, attr, 1.5, 2);
    assert.equal(b.length, 128);
    assert.equal(b.readBigUInt64LE(0), 2n ** 40n + 5n, "nodeid");
    assert.equal(b.readBigUInt64LE(8), 0n, "generation (none given)");
    assert.equal(entryOut(2, { ...attr, gen: 0xfffffffe }, 1, 1).readBigUInt64LE(8), 0xfffffffen);
    assert.equal(b.readBigUInt64LE(16), 1n, "entry_valid");
    assert.equal(b.readBigUInt64LE(24), 2n, "attr_valid");
    assert.equal(b.readUInt32LE(32), 500_000_000, "entry_valid_nsec");
    assert.equal(b.readUInt32LE(36), 0, "attr_valid_nsec");
    checkAttr(b, 40);
  });

  it("fuse_attr_out: 104 bytes, attr at 16", () => {
    const b = attrOut(attr, 1);
    assert.equal(b.length, 104);
    assert.equal(b.readBigUInt64LE(0), 1n);
    assert.equal(b.readUInt32LE(8), 0);
    assert.equal(b.readUInt32LE(12), 0);
    checkAttr(b, 16);
  });

  it("fuse_open_out, write_out/getxattr_out, lseek_out", () => {
    const o = openOut(7, 0);
    assert.equal(o.length, 16);
    assert.equal(o.readBigUInt64LE(0), 7n);
    assert.equal(o.readUInt32LE(8), 0);
    const w = sizeOut(1 << 20);
    assert.equal(w.length, 8);
    assert.equal(w.readUInt32LE(0), 1 << 20);
    assert.equal(w.readUInt32LE(4), 0);
    const l = lseekOut(1n << 40n);
    assert.equal(l.length, 8);
    assert.equal(l.readBigUInt64LE(0), 1n << 40n);
  });

  it("fuse_statfs_out: 80 bytes in kstatfs order", () => {
    const b = statfsOut({
      bsize: 4096,
      frsize: 1024,
      blocks: 10n,
      bfree: 9n,
      bavail: 8n,
      files: 7n,
      ffree: 6n,
      namelen: 255,
    });
    assert.equal(b.length, 80);
    assert.deepEqual(
      [0, 8, 16, 24, 32].map((at) => b.readBigUInt64LE(at)),
      [10n, 9n, 8n, 7n, 6n],
    );
    assert.equal(b.readUInt32LE(40), 4096, "bsize");
    assert.equal(b.readUInt32LE(44), 255, "namelen");
    assert.equal(b.readUInt32LE(48), 1024, "frsize");
    assert.ok(b.subarray(52).equals(Buffer.alloc(28)), "padding and spare are zero");
  });

  it("splits nanoseconds with a non-negative remainder", () => {
    assert.deepEqual(splitNs(0n), [0n, 0]);
    assert.deepEqual(splitNs(1_999_999_999n), [1n, 999_999_999]);
    assert.deepEqual(splitNs(-1n), [-1n, 999_999_999]);
    assert.equal(timeNs(BigInt.asUintN(64, -1n), 999_999_999), -1n);
  });
});

describe("fuse codec: requests", () => {
  it("decodes fuse_in_header", () => {
    const h = decodeInHeader(
      request(1, new Body().name("x"), { nodeid: 2 ** 33 + 1, unique: 99n, uid: 5, gid: 6, pid: 7 }),
    );
    assert.deepEqual(h, {
      len: 42,
      opcode: 1,
      unique: 99n,
      nodeid: 2 ** 33 + 1,
      uid: 5,
      gid: 6,
      pid: 7,
      totalExtlen: 0,
    });
  });

  it("reads names as byte strings and never past the request", () => {
    const buf = request(1, new Body().name("\xff\xfe").name("b"));
    const r = Reader.forRequest(buf, decodeInHeader(buf));
    assert.equal(r.name(), "\xff\xfe");
    assert.equal(r.name(), "b");
    assert.throws(() => r.u32(), { code: "EINVAL" });
    // A stale NUL beyond the request's end must not terminate a name.
    const big = Buffer.concat([request(1, Buffer.from("abc")), Buffer.from("\0")]);
    assert.throws(() => Reader.forRequest(big, decodeInHeader(big)).name(), { code: "EINVAL" });
  });

  it("excludes the extension area", () => {
    const buf = request(1, new Body().u32(1).u64(0));
    buf.writeUInt16LE(1, 36); // total_extlen: 8 bytes of extensions
    const r = Reader.forRequest(buf, decodeInHeader(buf));
    assert.equal(r.remaining, 4);
  });

  function setattrIn(valid: number): Buffer {
    const body = new Body()
      .u32(valid)
      .u32(0)
      .u64(9) // fh
      .u64(1234) // size
      .u64(0) // lock_owner
      .u64(100) // atime
      .u64(200) // mtime
      .u64(300) // ctime
      .u32(1) // atimensec
      .u32(2) // mtimensec
      .u32(3) // ctimensec
      .u32(0o104755) // mode (type bits included, as the kernel sends it)
      .u32(0)
      .u32(11) // uid
      .u32(12) // gid
      .u32(0);
    return request(4, body);
  }

  function decode(valid: number): ReturnType<typeof decodeSetattr> {
    const buf = setattrIn(valid);
    return decodeSetattr(Reader.forRequest(buf, decodeInHeader(buf)));
  }

  it("maps setattr valid bits onto a SetAttrRequest", () => {
    assert.deepEqual(decode(0), { req: {}, fh: undefined });
    const all = decode(
      Fattr.MODE | Fattr.UID | Fattr.GID | Fattr.SIZE | Fattr.ATIME | Fattr.MTIME | Fattr.FH | Fattr.CTIME,
    );
    assert.deepEqual(all, {
      req: { mode: 0o4755, uid: 11, gid: 12, size: 1234n, atime: 100_000_000_001n, mtime: 200_000_000_002n },
      fh: 9,
    });
    const now = decode(Fattr.ATIME | Fattr.ATIME_NOW | Fattr.MTIME | Fattr.MTIME_NOW);
    assert.deepEqual(now.req, { atime: "now", mtime: "now" });
  });
});

describe("fuse INIT negotiation", () => {
  const offered = (flags: number, minor = 45, flags2 = 0): Buffer =>
    request(26, new Body().u32(7).u32(minor).u32(131072).u32(flags).u32(flags2).raw(Buffer.alloc(44)), {
      nodeid: 0,
    });

  const negotiateBuf = (buf: Buffer): ReturnType<typeof negotiate> =>
    negotiate(decodeInit(Reader.forRequest(buf, decodeInHeader(buf))));

  it("answers min(kernel, ours) and grants only wanted, offered flags", () => {
    const all = 0x7fffffff | Init.INIT_EXT;
    const out = negotiateBuf(offered(all, 45, 0xffffffff));
    assert.equal(out.kind, "ok");
    if (out.kind !== "ok") return;
    assert.equal(out.neg.minor, PROTO_MINOR);
    const want = [
      Init.ASYNC_READ,
      Init.BIG_WRITES,
      Init.ATOMIC_O_TRUNC,
      Init.PARALLEL_DIROPS,
      Init.MAX_PAGES,
      Init.POSIX_ACL,
      Init.DONT_MASK,
      Init.EXPORT_SUPPORT,
    ];
    for (const f of [...want, Init.DO_READDIRPLUS, Init.READDIRPLUS_AUTO, Init.INIT_EXT])
      assert.ok(out.neg.flags & f);
    const unwanted = [Init.WRITEBACK_CACHE, Init.POSIX_LOCKS, Init.FLOCK_LOCKS, Init.HANDLE_KILLPRIV];
    for (const f of [...unwanted, Init.AUTO_INVAL_DATA]) assert.equal(out.neg.flags & f, 0);
    assert.equal(out.neg.flags2, Init2.DIRECT_IO_ALLOW_MMAP, "no passthrough unless wanted");
    const b = encodeInitOut(out.neg);
    assert.equal(b.length, 64);
    assert.equal(b.readUInt32LE(0), 7);
    assert.equal(b.readUInt32LE(4), PROTO_MINOR);
    assert.equal(b.readUInt32LE(8), 131072, "max_readahead echoed");
    assert.equal(b.readUInt32LE(12), out.neg.flags);
    assert.equal(b.readUInt32LE(20), MAX_WRITE);
    assert.equal(b.readUInt32LE(24), 1, "time_gran");
    assert.equal(b.readUInt16LE(28), MAX_PAGES, "max_pages");
    assert.equal(b.readUInt32LE(32), Init2.DIRECT_IO_ALLOW_MMAP, "flags2");
  });

  it("regression: no zero-message opendir when every listing must reach the daemon (strictatime)", () => {
    const buf = offered(0x7fffffff | Init.INIT_EXT);
    const k = decodeInit(Reader.forRequest(buf, decodeInHeader(buf)));
    const cached = negotiate(k, { passthrough: false });
    const strict = negotiate(k, { passthrough: false, cachedListings: false });
    assert.ok(cached.kind === "ok" && cached.neg.flags & Init.NO_OPENDIR_SUPPORT);
    assert.ok(strict.kind === "ok" && (strict.neg.flags & Init.NO_OPENDIR_SUPPORT) === 0);
    assert.equal(strict.neg.flags | Init.NO_OPENDIR_SUPPORT, cached.neg.flags);
  });

  it("never grants what was not offered, and speaks an older kernel's minor", () => {
    const out = negotiateBuf(offered(Init.ASYNC_READ, 22));
    assert.equal(out.kind, "ok");
    if (out.kind !== "ok") return;
    assert.equal(out.neg.flags, Init.ASYNC_READ);
    assert.equal(out.neg.minor, 22);
    assert.equal(out.neg.maxPages, 0);
    assert.equal(encodeInitOut(out.neg).length, 24);
  });

  it("asks a newer major to retry and refuses ancient kernels", () => {
    assert.deepEqual(negotiate({ major: 8, minor: 0, maxReadahead: 0, flags: 0, flags2: 0 }), {
      kind: "retry",
      major: 7,
    });
    assert.equal(negotiate({ major: 7, minor: 8, maxReadahead: 0, flags: 0, flags2: 0 }).kind, "unsupported");
  });
});
