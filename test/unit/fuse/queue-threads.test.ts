/**
 * The hand-over between queue threads and the serving thread (queue-threads.ts, queue-words.ts), without
 * a kernel: the test plays the queue threads by setting the shared words as queue-worker.ts does.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { QueueThreads } from "../../../src/fuse/kernel/queue-threads";
import * as W from "../../../src/fuse/kernel/queue-words";
import { ENT_COMMIT_ID, entryBytes } from "../../../src/fuse/kernel/ring";

const LEAD = entryBytes(0);

/** Puts a request (its bytes, its unique as the commit id) in entry `tag`, WAITING with `seq`. */
function handOver(v: W.QueueView, tag: number, seq: number, bytes: Buffer, unique: bigint): void {
  const e = v.entries[tag]!;
  const start = LEAD - bytes.length;
  bytes.copy(e.buf, start);
  e.buf.writeBigUInt64LE(unique, ENT_COMMIT_ID);
  v.set(v.entryWord(tag, W.E_REQ_START), start);
  v.set(v.entryWord(tag, W.E_REQ_LEN), bytes.length);
  v.set(v.entryWord(tag, W.E_SEQ), seq);
  v.set(v.entryWord(tag, W.E_STATE), W.WAITING);
}

function pending(fd: number): number {
  try {
    return fs.readSync(fd, Buffer.alloc(16), 0, 16, null);
  } catch {
    return 0; // EAGAIN
  }
}

describe("queue threads: the hand-over through shared memory", () => {
  const made: QueueThreads[] = [];
  afterEach(() => made.splice(0).forEach((q) => q.close(0)));

  function setUp(queues = 2, depth = 4): { q: QueueThreads; v: W.QueueView } {
    const shared = W.allocate({ queues, depth, payload: 8192 });
    const q = new QueueThreads(shared, -1);
    made.push(q);
    return { q, v: new W.QueueView(shared) };
  }

  it("lays entries out one after another, each with words of its own", () => {
    const { v } = setUp(2, 4);
    assert.equal(v.entries.length, 8);
    const words = new Set<number>();
    v.entries.forEach((e, tag) => {
      assert.equal(e.tag, tag);
      assert.equal(e.qid, Math.floor(tag / 4));
      assert.equal(e.buf.byteOffset, tag * entryBytes(8192));
      assert.equal(e.payload.length, 8192);
      for (const w of [W.E_STATE, W.E_SEQ, W.E_REQ_START, W.E_REQ_LEN, W.E_REFUSED])
        words.add(v.entryWord(tag, w));
    });
    for (const w of [W.W_GONE, W.W_STATE_SLEEPING, W.W_SEQ, W.W_STOP, v.queueWord(0, 0), v.queueWord(1, 0)])
      words.add(w);
    assert.equal(words.size, 8 * 5 + 6, "no word is shared");
    assert.ok(Math.max(...words) < v.words.length);
  });

  it("takes the waiting requests oldest first, whichever queue they came on", () => {
    const { q, v } = setUp();
    handOver(v, 5, 7, Buffer.from("second"), 42n);
    handOver(v, 1, 3, Buffer.from("first"), 41n);
    const taken = q.take();
    assert.deepEqual(
      taken.map((e) => [e.tag, e.request?.toString(), e.commitId]),
      [
        [1, "first", 41n],
        [5, "second", 42n],
      ],
    );
    assert.deepEqual(
      taken.map((e) => v.get(v.entryWord(e.tag, W.E_STATE))),
      [W.TAKEN, W.TAKEN],
    );
    assert.deepEqual(q.take(), [], "each request is taken once");
  });

  it("writes the reply into the entry, marks it DONE, and wakes its queue thread only if it sleeps", () => {
    const { q, v } = setUp();
    handOver(v, 6, 1, Buffer.from("req"), 99n);
    const [e] = q.take();
    v.set(v.queueWord(1, W.Q_SLEEPING), 1);
    q.reply(e!, 0, [Buffer.from("abc")]);
    assert.equal(v.get(v.entryWord(6, W.E_STATE)), W.DONE);
    assert.equal(e!.buf.readUInt32LE(0), 16 + 3);
    assert.equal(e!.buf.readInt32LE(4), 0);
    assert.equal(e!.buf.readBigUInt64LE(8), 99n);
    assert.equal(e!.payload.subarray(0, 3).toString(), "abc");
    assert.equal(pending(q.wakeFdOf(1)), 1, "the sleeping queue thread is rung once");
    assert.equal(v.get(v.queueWord(1, W.Q_SLEEPING)), 0);
    assert.equal(pending(q.wakeFdOf(0)), 0, "the other queue's thread is not");

    handOver(v, 7, 2, Buffer.from("req"), 100n);
    q.reply(q.take()[0]!, 2, [Buffer.from("ignored")]);
    assert.equal(e!.buf.readInt32LE(4), 0, "entry 6 untouched");
    assert.equal(v.entries[7]!.buf.readInt32LE(4), -2, "an errno reply carries no data");
    assert.equal(pending(q.wakeFdOf(1)), 0, "a queue thread that is awake is not rung");
  });

  it("undoes a reply the kernel refused, once, before the entry's next request", () => {
    const { q, v } = setUp();
    let undone = 0;
    handOver(v, 2, 1, Buffer.from("a"), 1n);
    q.reply(q.take()[0]!, 0, [], () => undone++);
    v.set(v.entryWord(2, W.E_REFUSED), 1);
    handOver(v, 2, 2, Buffer.from("b"), 2n);
    assert.equal(q.take().length, 1);
    assert.equal(undone, 1);
    q.take();
    assert.equal(undone, 1);
  });

  it("keeps the undo of a reply taken by the kernel out of the way: the next request drops it", () => {
    const { q, v } = setUp();
    let undone = 0;
    handOver(v, 0, 1, Buffer.from("a"), 1n);
    q.reply(q.take()[0]!, 0, [], () => undone++);
    handOver(v, 0, 2, Buffer.from("b"), 2n);
    q.take();
    v.set(v.entryWord(0, W.E_REFUSED), 1); // a refusal of the second reply, none given yet: nothing to undo
    q.take();
    assert.equal(undone, 0);
  });

  it("does not sleep while a request waits or once serving is over (the session ended, or a thread failed)", () => {
    const { q, v } = setUp();
    handOver(v, 3, 1, Buffer.from("x"), 1n);
    assert.deepEqual(q.sleep([]), []);
    assert.equal(v.get(W.W_STATE_SLEEPING), 0);
    q.take();
    v.set(W.W_GONE, W.GONE_ENDED);
    assert.equal(q.gone, true);
    assert.equal(q.failed, false, "the session ended: no error");
    assert.deepEqual(q.sleep([]), []);
    v.set(W.W_GONE, W.GONE_FAILED);
    assert.equal(q.failed, true);
  });

  it("answers an I/O thread's FSYNC reply on the entry that holds its request", () => {
    const { q, v } = setUp();
    handOver(v, 4, 1, Buffer.from("fsync"), 77n);
    q.take();
    const header = Buffer.alloc(16);
    header.writeUInt32LE(16, 0);
    header.writeInt32LE(-5, 4);
    header.writeBigUInt64LE(77n, 8);
    fs.writeSync(q.syncReplyFd, header);
    const toDevice: Buffer[] = [];
    q.commitSynced((b) => toDevice.push(b));
    assert.equal(v.get(v.entryWord(4, W.E_STATE)), W.DONE);
    assert.equal(v.entries[4]!.buf.readInt32LE(4), -5);
    header.writeBigUInt64LE(78n, 8); // a request that came on /dev/fuse: answered there
    fs.writeSync(q.syncReplyFd, header);
    q.commitSynced((b) => toDevice.push(b));
    assert.equal(toDevice.length, 1);
    assert.equal(toDevice[0]!.readBigUInt64LE(8), 78n);
  });
});
