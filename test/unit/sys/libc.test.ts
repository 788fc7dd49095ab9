/**
 * libc.ts calls whose outcome is not a plain success: readSome's empty non-blocking descriptor (the
 * serving loop's empty /dev/fuse, which once cost a stack-traced error per poll), willNeed.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { closeFd, pipe, readRecords, readSome, threadCpuNs, willNeed } from "../../../src/sys/libc";

describe("sys/libc", () => {
  it("readSome: undefined from an empty non-blocking pipe, the bytes once there are some, 0 at its end", () => {
    const [r, w] = pipe();
    try {
      const buf = Buffer.alloc(16);
      assert.equal(readSome(r, buf), undefined);
      fs.writeSync(w, "abc");
      assert.equal(readSome(r, buf), 3);
      assert.equal(buf.toString("latin1", 0, 3), "abc");
      assert.equal(readSome(r, buf), undefined);
      closeFd(w);
      assert.equal(readSome(r, buf), 0);
    } finally {
      closeFd(r);
    }
  });

  it("readSome: other failures throw an errno error", () => {
    assert.throws(() => readSome(-1, Buffer.alloc(1)), { code: "EBADF" });
  });

  it("readRecords: every whole record waiting, then returns on an empty pipe", () => {
    const [r, w] = pipe();
    try {
      fs.writeSync(w, "aabbcc");
      const got: string[] = [];
      readRecords(r, 2, (buf, at) => got.push(buf.toString("latin1", at, at + 2)), 2);
      assert.deepEqual(got, ["aa", "bb", "cc"]);
    } finally {
      closeFd(r);
      closeFd(w);
    }
  });

  it("willNeed takes any range of a file, and ignores what cannot be read ahead", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-libc-"));
    const file = path.join(dir, "f");
    fs.writeFileSync(file, "x".repeat(10));
    const fd = fs.openSync(file, "r");
    try {
      willNeed(fd, 0n, 128n * 1024n);
      willNeed(-1, 0n, 1n);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("threadCpuNs counts this thread's CPU time", () => {
    const start = threadCpuNs();
    const end = Date.now() + 3;
    while (Date.now() < end);
    assert.ok(threadCpuNs() - start >= 1_000_000n);
  });
});
