/**
 * The prefetch pool (prefetch.ts): threads start only while the disk is cold, warm what they are asked
 * without changing anything (access times included), and end when the pool is closed.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Prefetcher, type PrefetchOrder } from "../../../src/layer/prefetch";

/** A pool that records the orders it would post, and starts no thread. */
class Recording extends Prefetcher {
  readonly orders: PrefetchOrder[] = [];

  makeCold(): void {
    for (let i = 0; i < 8; i++) this.cold.waited();
  }

  protected override post(order: PrefetchOrder): boolean {
    this.orders.push(order);
    return true;
  }
}

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

  it("holds the jobs of small directories back until a chunk is full or it is flushed", () => {
    const rec = new Recording();
    rec.makeCold();
    rec.warm("/l/d", ["a", "b"]);
    rec.warm("/l/d/a", ["x", "y"]);
    assert.deepEqual(rec.orders, [], "four names wait for more");
    rec.flush();
    assert.deepEqual(rec.orders, [
      {
        kind: "warm",
        jobs: [
          { dir: "/l/d", names: ["a", "b"] },
          { dir: "/l/d/a", names: ["x", "y"] },
        ],
      },
    ]);
    rec.flush();
    assert.equal(rec.orders.length, 1, "nothing left to post");
  });

  it("posts every name once, a full chunk at once, across directories", () => {
    const rec = new Recording();
    rec.makeCold();
    rec.warm("/one", ["1", "2", "3", "4", "5"]);
    rec.warm("/two", ["6", "7", "8", "9", "10"]);
    assert.equal(rec.orders.length, 1, "eight names made an order");
    rec.flush();
    assert.deepEqual(rec.orders, [
      {
        kind: "warm",
        jobs: [
          { dir: "/one", names: ["1", "2", "3", "4", "5"] },
          { dir: "/two", names: ["6", "7", "8"] },
        ],
      },
      { kind: "warm", jobs: [{ dir: "/two", names: ["9", "10"] }] },
    ]);
  });

  it("holds nothing back while the disk is warm, and drops what it held when closed", () => {
    const rec = new Recording();
    rec.warm("/d", ["a"]);
    rec.flush();
    assert.deepEqual(rec.orders, [], "warm: not even held");
    rec.makeCold();
    rec.warm("/d", ["a"]);
    rec.close();
    rec.flush();
    assert.deepEqual(rec.orders, []);
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
