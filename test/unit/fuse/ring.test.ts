/**
 * The io_uring transport's pure parts (src/fuse/kernel/ring.ts): how many queues the kernel keeps, the
 * payload it requires, and the request rebuilt from an entry's header and payload.
 */
import { strict as assert } from "node:assert";
import { makeEntry, payloadSize, possibleCpus, receive } from "../../../src/fuse/kernel/ring";
import { decodeInit, negotiate } from "../../../src/fuse/kernel/init";
import { Init, Init2, MAX_WRITE } from "../../../src/fuse/kernel/protocol";
import { Reader } from "../../../src/fuse/kernel/codec";

describe("fuse/kernel/ring", () => {
  it("counts one queue per possible CPU, as num_possible_cpus() does", () => {
    assert.equal(possibleCpus("0\n"), 1);
    assert.equal(possibleCpus("0-1\n"), 2);
    assert.equal(possibleCpus("0-3,6\n"), 5);
  });

  it("gives every entry the payload the kernel requires: max(8 KiB, max_write, max_pages pages)", () => {
    const neg = { major: 7, minor: 40, maxReadahead: 0, flags: 0, flags2: 0, maxWrite: 4096, maxPages: 0 };
    assert.equal(payloadSize(neg, 4096), 32 * 4096);
    assert.equal(payloadSize({ ...neg, maxWrite: MAX_WRITE, maxPages: 255 }, 4096), MAX_WRITE);
    assert.equal(payloadSize({ ...neg, maxWrite: 1024, maxPages: 1 }, 4096), 8192);
    assert.equal(
      payloadSize({ ...neg, maxWrite: MAX_WRITE, maxPages: 255 }, 65536),
      255 * 65536,
      "64 KiB pages",
    );
  });

  it("rebuilds a request (in-header, op struct, payload) in front of the payload, which is not copied", () => {
    const e = makeEntry(3, 1, 8192);
    // A WRITE: fuse_write_in (40 bytes) in op_in, 5 bytes of data in the payload.
    e.buf.writeUInt32LE(40 + 40 + 5, 0);
    e.buf.writeUInt32LE(16, 4); // opcode WRITE
    e.buf.writeBigUInt64LE(99n, 8);
    e.buf.writeBigUInt64LE(7n, 16);
    e.buf.fill(0xab, 128, 168);
    e.buf.writeBigUInt64LE(99n, 264); // commit_id
    e.buf.writeUInt32LE(5, 272); // payload_sz
    e.payload.write("hello");
    const r = receive(e);
    assert.ok(r);
    assert.equal(r.length, 85);
    assert.equal(r.readUInt32LE(4), 16);
    assert.equal(r.readBigUInt64LE(8), 99n);
    assert.ok(r.subarray(40, 80).every((b) => b === 0xab));
    assert.equal(r.subarray(80).toString(), "hello");
    assert.equal(r.buffer, e.payload.buffer);
    assert.equal(r.byteOffset + 80, e.payload.byteOffset, "the payload is where it came");
    assert.equal(e.commitId, 99n);
  });

  it("a request whose lengths do not add up is refused (null), not read out of bounds", () => {
    const e = makeEntry(0, 0, 8192);
    e.buf.writeUInt32LE(30, 0); // shorter than the header
    assert.equal(receive(e), null);
    e.buf.writeUInt32LE(40 + 200, 0); // an op struct larger than op_in
    e.buf.writeUInt32LE(0, 272);
    assert.equal(receive(e), null);
  });

  it("INIT grants FUSE_OVER_IO_URING only when the kernel offers it and the mount wants it", () => {
    const init = (flags2: number): Buffer => {
      const b = Buffer.alloc(64);
      b.writeUInt32LE(7, 0);
      b.writeUInt32LE(42, 4);
      b.writeUInt32LE(Init.INIT_EXT, 12);
      b.writeUInt32LE(flags2, 16);
      return b;
    };
    const granted = (flags2: number, uring: boolean): boolean => {
      const o = negotiate(decodeInit(new Reader(init(flags2), 0, 64)), { passthrough: false, uring });
      return o.kind === "ok" && (o.neg.flags2 & Init2.OVER_IO_URING) !== 0;
    };
    assert.equal(granted(Init2.OVER_IO_URING, true), true);
    assert.equal(granted(Init2.OVER_IO_URING, false), false);
    assert.equal(granted(0, true), false);
  });
});
