/**
 * The prefetch pool (prefetch.ts): threads start only while the disk is cold, warm what they are asked
 * without changing anything (access times included), and end when the pool is closed.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Prefetcher } from "../../../src/layer/prefetch";

describe("layer/prefetch", () => {
  let root: string;
  let pool: Prefetcher;

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-prefetch-"));
    for (const d of ["a/x", "a/y", "b"]) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.writeFileSync(path.join(root, "a/f"), "data");
    const old = new Date("2001-02-03T04:05:06Z");
    for (const d of ["a", "a/x", "a/y", "b", "a/f"]) fs.utimesSync(path.join(root, d), old, old);
    pool = new Prefetcher(2, 60_000);
  });

  afterEach(function () {
    this.timeout(15_000);
    pool.close(10_000);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("starts no thread while the disk is warm", () => {
    pool.warm(root, ["a", "b"]);
    assert.equal(pool.threads, 0);
  });

  it("holds the names of small directories back until a chunk is full or it is flushed", () => {
    for (let i = 0; i < 8; i++) pool.cold.waited();
    pool.warm(root, ["a", "b"]);
    pool.warm(path.join(root, "a"), ["x", "y"]);
    assert.equal(pool.threads, 0, "four names wait for more");
    pool.flush();
    assert.equal(pool.threads, 1, "the flush posted them: the first post starts a thread");
    pool.flush();
    assert.equal(pool.threads, 1, "nothing left to post");
  });

  it("posts a full chunk at once, without a flush", () => {
    for (let i = 0; i < 8; i++) pool.cold.waited();
    pool.warm(root, ["a", "b", "c", "d", "e", "f", "g", "h"]);
    assert.equal(pool.threads, 1);
  });

  it("warms a cold disk's directories on its threads, changing no access time, and ends them on close", async function () {
    this.timeout(30_000);
    const before = ["a", "a/x", "a/y", "b", "a/f"].map((d) => fs.statSync(path.join(root, d)).atimeMs);
    const deadline = Date.now() + 20_000;
    // The first request starts a thread (and is dropped: none runs yet); ask until one has done a job.
    while (pool.done === 0) {
      assert.ok(Date.now() < deadline, "no prefetch thread ran a job");
      for (let i = 0; i < 8; i++) pool.cold.waited(); // the disk stays cold
      pool.warm(root, ["a", "b", "missing"]);
      pool.flush();
      await new Promise((r) => setImmediate(r));
    }
    assert.ok(pool.threads >= 1);
    assert.equal(pool.close(10_000), true, "every thread ended");
    const after = ["a", "a/x", "a/y", "b", "a/f"].map((d) => fs.statSync(path.join(root, d)).atimeMs);
    assert.deepEqual(after, before);
  });
});
