/**
 * READDIR reply building: record layout, alignment, offsets and filling up to the requested size.
 */
import { strict as assert } from "node:assert";
import { DirentWriter, direntSize, direntType, fillDirents } from "../../../src/fuse/kernel/dirents";
import type { Slot, Window } from "../../../src/fuse/kernel/dirents";

interface Parsed {
  ino: bigint;
  off: number;
  type: number;
  name: string;
}

function parse(buf: Buffer, plus = false): Parsed[] {
  const out: Parsed[] = [];
  for (let at = 0; at < buf.length;) {
    const d = plus ? at + 128 : at;
    const namelen = buf.readUInt32LE(d + 16);
    const name = buf.toString("latin1", d + 24, d + 24 + namelen);
    out.push({
      ino: buf.readBigUInt64LE(d),
      off: Number(buf.readBigUInt64LE(d + 8)),
      type: buf.readUInt32LE(d + 20),
      name,
    });
    const end = d + 24 + namelen;
    at = direntSize(namelen, plus) + at;
    assert.ok(
      buf.subarray(end, at).every((x) => x === 0),
      "padding is zeroed",
    );
  }
  return out;
}

const slots: Slot[] = Array.from({ length: 1000 }, (_, i) => ({
  name: `n${i}${"\xff".repeat(i % 9)}`,
  ino: BigInt(i + 10),
  type: 8,
}));
const slotAt = (i: number): Slot | undefined => slots[i];
const from = (start: number): Window => ({ slotAt, start, offsetOf: (i) => i + 1 });

describe("fuse dirents", () => {
  it("sizes records like FUSE_DIRENT_SIZE / FUSE_DIRENTPLUS_SIZE", () => {
    assert.equal(direntSize(1, false), 32);
    assert.equal(direntSize(8, false), 32);
    assert.equal(direntSize(9, false), 40);
    assert.equal(direntSize(1, true), 160);
    assert.equal(direntSize(255, true), 408);
  });

  it("maps S_IFMT bits to DT_* types", () => {
    assert.equal(direntType(0o040000), 4);
    assert.equal(direntType(0o100000), 8);
    assert.equal(direntType(0o120000), 10);
    assert.equal(direntType(0o020000), 2);
    assert.equal(direntType(0), 0);
  });

  it("fills up to the size asked, each entry's off naming the next index", () => {
    const buf = fillDirents(from(0), 4096);
    assert.ok(buf.length <= 4096 && buf.length > 4096 - 40);
    const got = parse(buf);
    got.forEach((e, i) => {
      assert.equal(e.off, i + 1);
      assert.equal(e.name, slots[i]?.name);
      assert.equal(e.ino, slots[i]?.ino);
      assert.equal(e.type, 8);
    });
  });

  it("resumes at any offset and covers the listing exactly once", () => {
    const seen: string[] = [];
    let offset = 0;
    for (;;) {
      const page = parse(fillDirents(from(offset), 1000));
      if (page.length === 0) break;
      seen.push(...page.map((e) => e.name));
      offset = page[page.length - 1]?.off ?? offset;
    }
    assert.deepEqual(
      seen,
      slots.map((s) => s.name),
    );
    assert.equal(fillDirents(from(1000), 4096).length, 0, "past the end: empty (EOF)");
    assert.equal(fillDirents(from(5), 10).length, 0, "nothing fits: empty");
  });

  it("writes direntplus records with the entry_out first", () => {
    const w = new DirentWriter(4096, true);
    assert.ok(w.fits(3));
    w.add({ name: "..", ino: 1n, type: 4 }, 2, null);
    const a = {
      ino: 77n,
      size: 1n,
      blocks: 0n,
      atimeNs: 0n,
      mtimeNs: 0n,
      ctimeNs: 0n,
      mode: 0o100600,
      nlink: 1,
      uid: 0,
      gid: 0,
      rdev: 0,
      blksize: 512,
    };
    w.add({ name: "abc", ino: 77n, type: 8 }, 3, { nodeid: 9, attr: a, entryTimeout: 1, attrTimeout: 1 });
    const buf = w.result();
    assert.equal(buf.length, 160 + 160);
    assert.ok(buf.subarray(0, 128).equals(Buffer.alloc(128)), "dot entries: node id 0, no attributes");
    assert.equal(buf.readBigUInt64LE(160), 9n, "nodeid");
    assert.equal(buf.readBigUInt64LE(160 + 40), 77n, "attr.ino");
    assert.deepEqual(parse(buf, true), [
      { ino: 1n, off: 2, type: 4, name: ".." },
      { ino: 77n, off: 3, type: 8, name: "abc" },
    ]);
  });

  it("refuses a record that does not fit whole", () => {
    const w = new DirentWriter(200, true);
    assert.ok(w.add({ name: "a", ino: 1n, type: 8 }, 1, null));
    assert.equal(w.fits(1), false);
    assert.equal(w.add({ name: "b", ino: 2n, type: 8 }, 2, null), false);
    assert.equal(w.count, 1);
  });
});
