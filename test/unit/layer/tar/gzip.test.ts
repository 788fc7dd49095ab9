/**
 * src/layer/tar/gzip.ts: checkpoints every ~MiB of output and reads from them at any offset, checked
 * against Node's own zlib decompressing the whole stream: one member at several levels (stored blocks
 * included), and concatenated members of very different sizes. No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { ArchiveReader } from "../../../../src/layer/tar/archive";
import { GzipScanner, SPAN, SpanInflater, type Checkpoint } from "../../../../src/layer/tar/gzip";
import type { TarNode } from "../../../../src/layer/tar/tree";
import { prng, randBytes, randInt, type Rand } from "../../../helpers/prng";
import { makeTempDir, removeTree } from "../../../helpers/tmp";

/** `n` bytes mixing text-like runs (compressible) and random runs. */
function mixed(rand: Rand, n: number): Buffer {
  const out = Buffer.alloc(n);
  const words = ["union", "layer", "tar", "gzip", "window", "checkpoint", "\n", " ", "0123456789"];
  for (let at = 0; at < n;) {
    const run = Math.min(n - at, 1 + randInt(rand, 64 * 1024));
    if (rand() < 0.3) randBytes(rand, run).copy(out, at);
    else
      for (let i = 0; i < run;)
        i += out.write(words[randInt(rand, words.length)]!, at + i, run - i, "latin1");
    at += run;
  }
  return out;
}

interface Scanned {
  checkpoints: Checkpoint[];
  windows: (Buffer | undefined)[];
  size: number;
}

describe("tar layer: random access into gzip", () => {
  let dir: string;
  let fds: number[] = [];
  beforeEach(() => (dir = makeTempDir("targzip")));
  afterEach(() => {
    for (const fd of fds) fs.closeSync(fd);
    fds = [];
    removeTree(dir);
  });

  function openFile(bytes: Buffer): number {
    const p = path.join(dir, `f${fds.length}.gz`);
    fs.writeFileSync(p, bytes);
    const fd = fs.openSync(p, "r");
    fds.push(fd);
    return fd;
  }

  function scan(fd: number): Scanned {
    const s = new GzipScanner(fd);
    try {
      while (s.skip(1 << 30) > 0);
      return { checkpoints: s.checkpoints, windows: s.windows, size: s.size };
    } finally {
      s.close();
    }
  }

  /** Every span equals its slice of `plain`, and `reads` random reads at random offsets do too. */
  function checkRandomAccess(gz: Buffer, plain: Buffer, rand: Rand, reads = 80): Scanned {
    const fd = openFile(gz);
    const sc = scan(fd);
    assert.equal(sc.size, plain.length);
    const window = (i: number): Buffer => sc.windows[i]!;
    const spans = new SpanInflater(fd, { ...sc, window });
    try {
      sc.checkpoints.forEach((cp, i) => {
        const end = sc.checkpoints[i + 1]?.out ?? sc.size;
        assert.ok(spans.span(i).equals(plain.subarray(cp.out, end)), `span ${i}`);
      });
    } finally {
      spans.close();
    }
    const index = { compression: "gzip" as const, tree: undefined as never, ...sc };
    const reader = new ArchiveReader(fd, { index, window });
    for (let k = 0; k < reads; k++) {
      const offset = randInt(rand, plain.length);
      const size = Math.min(plain.length - offset, randInt(rand, rand() < 0.8 ? 8192 : 3 * SPAN));
      const node = { offset, size } as TarNode;
      const buf = Buffer.alloc(size);
      assert.equal(reader.read(node, buf, 0, size, 0), size);
      assert.ok(buf.equals(plain.subarray(offset, offset + size)), `read ${size} at ${offset}`);
    }
    reader.close();
    return sc;
  }

  for (const level of [0, 1, 6, 9]) {
    it(`one member at level ${level}: checkpoints about every MiB, reads at any offset`, function () {
      this.timeout(60_000);
      const rand = prng(level + 1);
      const plain = mixed(rand, 4 * SPAN + 12345);
      const sc = checkRandomAccess(zlib.gzipSync(plain, { level }), plain, rand);
      assert.ok(sc.checkpoints.length >= 4, `${sc.checkpoints.length} checkpoints`);
      sc.checkpoints.forEach((cp, i) => {
        const next = sc.checkpoints[i + 1]?.out ?? sc.size;
        assert.ok(next - cp.out <= 2 * SPAN, `span ${i} is ${next - cp.out} bytes`);
        if (i > 0) assert.equal(sc.windows[i]?.length, 32768);
      });
    });
  }

  it("resumes at bit positions inside a byte", () => {
    const rand = prng(99);
    const plain = mixed(rand, 8 * SPAN);
    const sc = checkRandomAccess(zlib.gzipSync(plain, { level: 6 }), plain, rand, 20);
    assert.ok(
      sc.checkpoints.some((cp) => cp.bits > 0),
      "no checkpoint with bits",
    );
  });

  it("concatenated members (pigz -i, bgzip): a checkpoint at each member, none mid-member needed", function () {
    this.timeout(60_000);
    const rand = prng(7);
    const sizes = [10_000, 2 * SPAN + 5, 1, 70_000, 3 * SPAN, 64 * 1024, 0, 500_000];
    const pieces = sizes.map((n) => mixed(rand, n));
    const plain = Buffer.concat(pieces);
    const gz = Buffer.concat(pieces.map((p) => zlib.gzipSync(p)));
    const sc = checkRandomAccess(gz, plain, rand);
    const memberStarts = sc.checkpoints.filter((cp) => cp.member).map((cp) => cp.out);
    let at = 0;
    const expected = [0];
    for (const n of sizes.slice(0, -1)) if ((at += n) > expected[expected.length - 1]!) expected.push(at);
    assert.deepEqual(memberStarts, expected);
  });

  it("ignores bytes after the last member, as gzip does", () => {
    const plain = Buffer.from("abc".repeat(1000));
    const sc = checkRandomAccess(Buffer.concat([zlib.gzipSync(plain), Buffer.alloc(700)]), plain, prng(1), 5);
    assert.equal(sc.checkpoints.length, 1);
  });

  it("inflates a span only as far as a read needs, and goes on from there for the next read", () => {
    const rand = prng(5);
    const plain = mixed(rand, 3 * SPAN);
    const fd = openFile(zlib.gzipSync(plain));
    const sc = scan(fd);
    const spans = new SpanInflater(fd, { ...sc, window: (i) => sc.windows[i]! });
    try {
      const first = spans.fill(1, 1000);
      assert.ok(
        first.have >= 1000 && first.have < first.data.length,
        `${first.have} of ${first.data.length}`,
      );
      const start = sc.checkpoints[1]!.out;
      assert.ok(first.data.subarray(0, first.have).equals(plain.subarray(start, start + first.have)));
      // Another span in between: span 1 starts over, into the same room; then it goes on to the end.
      assert.ok(spans.span(0).equals(plain.subarray(0, start)));
      const again = spans.fill(1, first.have + 1, first);
      assert.equal(again, first);
      const all = spans.fill(1, Infinity, again);
      const end = sc.checkpoints[2]?.out ?? sc.size;
      assert.equal(all.have, end - start);
      assert.ok(all.data.equals(plain.subarray(start, end)));
    } finally {
      spans.close();
    }
  });
});
