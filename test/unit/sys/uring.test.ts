/**
 * The raw io_uring (src/sys/uring.ts): submissions carry their tag to their completions, a multishot
 * poll stays armed across events, and a full submission queue submits before handing out more.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { CQE_F_MORE, OP_POLL_ADD, POLL_ADD_MULTI, SETUP_SQE128, Uring } from "../../../src/sys/uring";
import { closeFd, pipe } from "../../../src/sys/libc";

const OP_NOP = 0;

function nop(ring: Uring, tag: number): void {
  ring.sqe(OP_NOP, 0, tag);
}

describe("sys/uring", () => {
  it("hands each completion the tag of its submission, with 128-byte entries", () => {
    const ring = new Uring(4, 8, SETUP_SQE128);
    try {
      assert.equal(ring.sqeSize, 128);
      for (const tag of [7, 8, 9]) nop(ring, tag);
      assert.equal(ring.enter(3), 3);
      assert.deepEqual(
        ring.completions().map((c) => [c.tag, c.res]),
        [
          [7, 0],
          [8, 0],
          [9, 0],
        ],
      );
      assert.deepEqual(ring.completions(), []);
    } finally {
      ring.close();
    }
  });

  it("a full submission queue is submitted before more entries are handed out", () => {
    const ring = new Uring(2, 16, 0);
    try {
      for (let tag = 0; tag < 5; tag++) nop(ring, tag);
      ring.enter(1);
      assert.deepEqual(
        ring.completions().map((c) => c.tag),
        [0, 1, 2, 3, 4],
      );
    } finally {
      ring.close();
    }
  });

  it("a multishot poll reports every time its descriptor becomes readable, and stays armed", () => {
    const ring = new Uring(4, 8, 0);
    const [r, w] = pipe();
    try {
      const e = ring.sqe(OP_POLL_ADD, r, 42);
      e.writeUInt32LE(POLL_ADD_MULTI, 24);
      e.writeUInt32LE(1, 28); // POLLIN
      ring.enter(0);
      assert.deepEqual(ring.completions(), []);
      for (let i = 0; i < 2; i++) {
        fs.writeSync(w, "x");
        ring.enter(1);
        const [c] = ring.completions();
        assert.equal(c?.tag, 42);
        assert.ok(((c?.flags ?? 0) & CQE_F_MORE) !== 0, "still armed");
        fs.readSync(r, Buffer.alloc(1));
      }
    } finally {
      ring.close();
      closeFd(r);
      closeFd(w);
    }
  });
});
