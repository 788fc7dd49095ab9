/**
 * The table of handles whose READs the io_uring queue threads read themselves (direct-reads.ts): what a
 * queue thread finds for a handle as the serving thread publishes, retracts and moves the epoch.
 */
import { strict as assert } from "node:assert";
import { allocateDirectReads, directFd, DirectReads } from "../../../src/fuse/kernel/direct-reads";

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

  it("handles numbered beyond one word are never published", () => {
    const { d, words } = setUp();
    d.publish(2 ** 31, 60, 0);
    assert.equal(directFd(words, 2n ** 31n), -1);
    assert.equal(directFd(words, 2n ** 40n), -1);
  });
});
