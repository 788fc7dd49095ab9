/**
 * READ replies spliced from the file to /dev/fuse (src/fuse/kernel/splice.ts): the bytes a reader gets
 * are the file's, whatever the offset, size and end of file, and whether or not the reply was spliced
 * (UNIONFS_TS_SPLICE=0 turns splicing off). The daemon runs in the foreground with `-o debug`, whose
 * log says which READ replies were spliced. Every test unmounts in its afterEach hook.
 */
import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { waitFor } from "../../helpers/mounts";
import { useCleanup, type Cleanup, type ForegroundUnion } from "../../helpers/unionfs";

const SIZE = (5 << 20) + 12_345; // not a whole number of pages or of READ requests

function splicedReads(m: ForegroundUnion): number {
  return (m.stderr().match(/^unionfs-ts: READ #.*bytes spliced\)$/gm) ?? []).length;
}

async function mountWith(
  t: Cleanup,
  splice: boolean,
): Promise<{ m: ForegroundUnion; A: string; C: string; data: Buffer }> {
  const data = crypto.randomBytes(SIZE);
  const root = t.tree({ A: {}, B: { big: data }, C: {} });
  const [A, B, C] = ["A", "B", "C"].map((d) => path.join(root, d)) as [string, string, string];
  const saved = process.env.UNIONFS_TS_SPLICE;
  process.env.UNIONFS_TS_SPLICE = splice ? "1" : "0";
  try {
    const m = await t.foreground(`${A}:${B}`, C, { options: ["debug"] });
    await waitFor(() => /INIT: protocol/.test(m.stderr()), 10_000, "the daemon's INIT log line");
    return { m, A, C, data };
  } finally {
    if (saved === undefined) delete process.env.UNIONFS_TS_SPLICE;
    else process.env.UNIONFS_TS_SPLICE = saved;
  }
}

/** pread of `length` bytes at `offset` through a descriptor opened with `flags`. */
function pread(file: string, flags: number, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, flags);
  try {
    const buf = Buffer.alloc(length);
    return buf.subarray(0, fs.readSync(fd, buf, 0, length, offset));
  } finally {
    fs.closeSync(fd);
  }
}

describe("READ replies spliced from lower files (kernel transport)", function () {
  this.timeout(60_000);
  const t = useCleanup();

  for (const splice of [true, false]) {
    it(`a lower file reads back byte for byte, cached and O_DIRECT at odd offsets, up to its end (splice ${splice ? "on" : "off"})`, async () => {
      const { m, C, data } = await mountWith(t, splice);
      const big = path.join(C, "big");
      assert.ok(fs.readFileSync(big).equals(data), "the whole file, read through the page cache");
      const direct = fs.constants.O_RDONLY | fs.constants.O_DIRECT;
      for (const [offset, length] of [
        [4097, 300_000],
        [0, 1 << 20],
        [SIZE - 70_000, 200_000], // a short read at the end of the file
        [SIZE, 100_000], // at the end: nothing
      ] as const) {
        const want = data.subarray(offset, Math.min(SIZE, offset + length));
        assert.ok(pread(big, direct, offset, length).equals(want), `O_DIRECT ${length} bytes at ${offset}`);
      }
      if (splice) assert.ok(splicedReads(m) > 0, "some READ replies should have been spliced");
      else assert.equal(splicedReads(m), 0);
    });
  }

  it("a read-only handle opened before a copy-up reads the copy, spliced as well", async () => {
    const { m, A, C, data } = await mountWith(t, true);
    const big = path.join(C, "big");
    const fd = fs.openSync(big, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
    try {
      const first = Buffer.alloc(256 << 10);
      fs.readSync(fd, first, 0, first.length, 0);
      assert.ok(first.equals(data.subarray(0, first.length)));
      const patch = Buffer.alloc(128 << 10, 0x5a);
      const w = fs.openSync(big, "r+");
      fs.writeSync(w, patch, 0, patch.length, 1 << 20);
      fs.closeSync(w);
      assert.ok(fs.existsSync(path.join(A, "big")), "the write copied the file up");
      const after = Buffer.alloc(512 << 10);
      fs.readSync(fd, after, 0, after.length, (1 << 20) - (64 << 10));
      const want = Buffer.concat([
        data.subarray((1 << 20) - (64 << 10), 1 << 20),
        patch,
        data.subarray((1 << 20) + patch.length, (1 << 20) + (448 << 10)),
      ]);
      assert.ok(after.equals(want), "the old handle reads the copy-up's bytes");
    } finally {
      fs.closeSync(fd);
    }
    assert.ok(splicedReads(m) > 0);
  });
});
