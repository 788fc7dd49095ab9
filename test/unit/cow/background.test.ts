/**
 * Background copy-up of big lower files, driven in-process: the data is staged in another thread while
 * the union answers other calls, and the copy-up that follows takes the staged data over.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BackgroundCopier, WorkDir } from "../../../src/cow";
import { fromText } from "../../../src/sys/bytes";
import { pollReadable } from "../../../src/sys/libc";
import type { UnionOps } from "../../../src/unionfs/types";
import { makeUnion, type Fixture } from "../unionfs/fixture";

const { O_WRONLY, O_APPEND, O_RDONLY } = fs.constants;
const BIG = 40 << 20; // above the 32 MiB threshold

function waitForCopies(ops: UnionOps): string[] {
  const background = ops.background;
  assert.ok(background !== undefined);
  for (;;) {
    pollReadable([background.wakeFd]);
    const keys = background.finished();
    if (keys.length > 0) return keys;
  }
}

describe("cow/background (background copy-up of big files)", function () {
  this.timeout(30_000);
  let f: Fixture;
  let lowerBytes: Buffer;
  beforeEach(() => {
    f = makeUnion([{}, { small: "s" }]);
    lowerBytes = Buffer.alloc(BIG);
    for (let i = 0; i < BIG; i += 4096) lowerBytes.writeUInt32LE(i, i);
    fs.writeFileSync(path.join(f.dirs[1] as string, "big"), lowerBytes);
  });
  afterEach(() => f.cleanup());

  it("stages a big file's data while other calls are answered, then copies up from the staged data", () => {
    const key = f.fs.background?.stage("/big");
    assert.ok(key !== undefined);
    assert.equal(f.fs.background?.stage("/big"), key, "a second request waits for the same copy");
    assert.equal(f.fs.getattr("/small").size, 1n); // answered while the copy runs
    assert.deepEqual(waitForCopies(f.fs), [key]);
    const fh = f.fs.open("/big", O_WRONLY | O_APPEND);
    f.fs.write(fh, Buffer.from("tail"), 0n);
    f.fs.release(fh);
    const upper = fs.readFileSync(path.join(f.dirs[0] as string, "big"));
    assert.equal(upper.length, BIG + 4);
    assert.ok(upper.subarray(0, BIG).equals(lowerBytes), "the original bytes survived the copy-up");
    assert.ok(fs.readFileSync(path.join(f.dirs[1] as string, "big")).equals(lowerBytes), "lower unchanged");
    assert.equal(f.fs.background?.stage("/big"), undefined, "nothing left to copy");
  });

  it("copies small files, and files already up, in place without staging", () => {
    assert.equal(f.fs.background?.stage("/small"), undefined);
    const fh = f.fs.open("/big", O_RDONLY);
    f.fs.release(fh);
    assert.equal(f.fs.background?.stage("/missing"), undefined);
  });

  it("leaves no staged file behind when the copy-up turns out to need no data (truncate to 0)", () => {
    const key = f.fs.background?.stage("/big");
    assert.ok(key !== undefined);
    waitForCopies(f.fs);
    f.fs.setattr("/big", { size: 0n });
    assert.equal(f.fs.getattr("/big").size, 0n);
    const work = fs.readdirSync(f.dirs[0] as string).filter((n) => n !== "big");
    for (const dir of work) assert.deepEqual(fs.readdirSync(path.join(f.dirs[0] as string, dir)), [], dir);
  });
});

describe("cow/background: a failed background copy", function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-ts-bg-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("is reported with its errno, removes its file, and fails the copy-up that takes it", () => {
    const work = WorkDir.prepare(fromText(dir));
    const copier = new BackgroundCopier(work);
    try {
      fs.writeFileSync(path.join(dir, "src"), Buffer.alloc(1 << 20, 1));
      const tmp = path.join(dir, "staged");
      fs.writeFileSync(tmp, "");
      const src = work.layer.open("/src");
      const dst = work.layer.openAccess("/staged", O_RDONLY); // not writable: the copy fails with EBADF
      copier.start("k", src, dst, "/staged", 1n << 20n);
      let keys: string[] = [];
      while (keys.length === 0) {
        pollReadable([copier.wakeFd]);
        keys = copier.collect();
      }
      assert.deepEqual(keys, ["k"]);
      assert.equal(copier.state("k"), "ready");
      assert.equal(fs.existsSync(tmp), false, "the partial copy is removed");
      assert.throws(() => copier.take("k"), { code: "EBADF" });
      assert.equal(copier.take("k"), undefined, "the error is handed out once");
    } finally {
      copier.close();
      work.close();
    }
  });
});
