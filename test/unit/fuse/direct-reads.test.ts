/**
 * The table of handles whose READs the io_uring queue threads read themselves (direct-reads.ts): what a
 * queue thread finds for a handle as the serving thread publishes, retracts and moves the epoch.
 */
import { strict as assert } from "node:assert";
import { Worker } from "node:worker_threads";
import { allocateDirectReads, directFd, DirectReads } from "../../../src/fuse/kernel/direct-reads";

/**
 * A thread that plays a queue thread: it asks for handle 5 until told to stop, and counts the answers
 * that break the table's promise (a descriptor of another handle, or one published before the epoch it
 * saw before asking). Handle 5's descriptors are MINE + epoch, the other handle's OTHER + epoch.
 */
const READER = `
const { workerData, parentPort } = require("node:worker_threads");
const { directFd } = require(workerData.module);
const words = new Int32Array(workerData.memory);
const stop = new Int32Array(workerData.stop);
let hits = 0, bad = 0;
while (Atomics.load(stop, 0) === 0) {
  const seen = Atomics.load(words, 0);
  const fd = directFd(words, 5n);
  if (fd < 0) continue;
  hits++;
  Atomics.add(stop, 1, 1);
  if (fd >= ${5_000_000} || fd - ${1_000_000} < seen) bad++;
}
parentPort.postMessage({ hits, bad });
`;

describe("direct reads: the handles a queue thread may read itself", () => {
  function setUp(): { d: DirectReads; words: Int32Array } {
    const memory = allocateDirectReads();
    return { d: new DirectReads(memory), words: new Int32Array(memory) };
  }

  it("a published handle reads its descriptor; an unknown one goes to the serving thread", () => {
    const { d, words } = setUp();
    d.publish(7, 42, 0);
    assert.equal(directFd(words, 7n), 42);
    assert.equal(directFd(words, 8n), -1);
    assert.equal(directFd(words, 0n), -1);
  });

  it("a retracted handle (released) is read by nobody, and its slot serves the next handle", () => {
    const { d, words } = setUp();
    d.publish(7, 42, 0);
    d.retract(7);
    assert.equal(directFd(words, 7n), -1);
    d.publish(7 + 4096, 43, 0);
    assert.equal(directFd(words, BigInt(7 + 4096)), 43);
  });

  it("two open handles in one slot: the second is not published (its READs go to the serving thread)", () => {
    const { d, words } = setUp();
    d.publish(5, 40, 0);
    d.publish(5 + 4096, 41, 0);
    assert.equal(directFd(words, 5n), 40);
    assert.equal(directFd(words, BigInt(5 + 4096)), -1);
    d.retract(5 + 4096); // not its slot: changes nothing
    assert.equal(directFd(words, 5n), 40);
  });

  it("regression: once a copy-up moved the epoch, no handle published before is read until published again", () => {
    const { d, words } = setUp();
    d.publish(3, 30, 0);
    d.publish(4, 31, 0);
    d.setEpoch(1);
    assert.equal(directFd(words, 3n), -1);
    assert.equal(directFd(words, 4n), -1);
    d.publish(3, 33, 1); // the serving thread had it follow the copy
    assert.equal(directFd(words, 3n), 33);
    assert.equal(directFd(words, 4n), -1);
  });

  it("a handle with no descriptor (a tar layer's file) empties its slot", () => {
    const { d, words } = setUp();
    d.publish(9, 50, 0);
    d.publish(9, undefined, 0);
    assert.equal(directFd(words, 9n), -1);
  });

  it("a queue thread reading while handles are published, retracted and the epoch moves: never another handle's descriptor, never a stale one", async () => {
    const MINE = 1_000_000;
    const OTHER = 5_000_000;
    const memory = allocateDirectReads();
    const d = new DirectReads(memory);
    const stop = new Int32Array(new SharedArrayBuffer(8));
    const reader = new Worker(READER, {
      eval: true,
      workerData: {
        memory,
        stop: stop.buffer,
        module: require.resolve("../../../src/fuse/kernel/direct-reads"),
      },
    });
    const result = new Promise<{ hits: number; bad: number }>((resolve, reject) => {
      reader.once("message", resolve);
      reader.once("error", reject);
    });
    try {
      for (let epoch = 1; epoch <= 3000; epoch++) {
        d.setEpoch(epoch); // a copy-up's reply
        if (epoch % 10 === 0) {
          // Handle 5 released, another handle in its slot, released, handle 5 again (numbers never come back
          // in real life; here the slot's reuse is what is tested).
          d.retract(5);
          d.publish(5 + 4096, OTHER + epoch, epoch);
          d.retract(5 + 4096);
        }
        d.publish(5, MINE + epoch, epoch);
        const hits = Atomics.load(stop, 1);
        const until = process.hrtime.bigint() + 20_000n;
        while (Atomics.load(stop, 1) === hits && process.hrtime.bigint() < until); // let the reader see it
      }
    } finally {
      Atomics.store(stop, 0, 1);
    }
    const { hits, bad } = await result;
    assert.equal(bad, 0);
    assert.ok(hits > 0, "the reader found the handle published");
  });

  it("handles numbered beyond one word are never published", () => {
    const { d, words } = setUp();
    d.publish(2 ** 31, 60, 0);
    assert.equal(directFd(words, 2n ** 31n), -1);
    assert.equal(directFd(words, 2n ** 40n), -1);
  });
});
