/**
 * SpliceReplies without a mount: a reply spliced into a plain file instead of /dev/fuse is the out
 * header followed by the file's bytes; the end of the file, a reply too big for the pipes and a
 * descriptor splice(2) refuses behave as the READ handler expects.
 */
import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { outHeader } from "../../../src/fuse/kernel/codec";
import { SpliceReplies } from "../../../src/fuse/kernel/splice";

describe("fuse/kernel/splice", () => {
  let dir: string;
  let data: Buffer;
  let src: number;
  let splicer: SpliceReplies;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "splice-"));
    data = crypto.randomBytes(700_001);
    fs.writeFileSync(path.join(dir, "src"), data);
    src = fs.openSync(path.join(dir, "src"), "r");
    splicer = new SpliceReplies();
  });
  afterEach(() => {
    splicer.close();
    fs.closeSync(src);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** What `send` writes for unique `unique`, captured in a file. */
  function sent(unique: bigint): Buffer {
    const out = path.join(dir, `out-${unique}`);
    const fd = fs.openSync(out, "w");
    try {
      assert.equal(splicer.send(fd, unique), "ok");
    } finally {
      fs.closeSync(fd);
    }
    return fs.readFileSync(out);
  }

  it("sends the out header, then the bytes at the offset asked for", () => {
    assert.equal(splicer.fill(src, 4097n, 300_000), 300_000);
    const want = data.subarray(4097, 4097 + 300_000);
    assert.ok(sent(7n).equals(Buffer.concat([outHeader(16 + want.length, 0, 7n), want])));
  });

  it("a read past the end of the file is short, and one at the end is empty", () => {
    assert.equal(splicer.fill(src, 600_000n, 200_000), 100_001);
    assert.ok(sent(8n).subarray(16).equals(data.subarray(600_000)));
    assert.equal(splicer.fill(src, BigInt(data.length), 65_536), 0);
    assert.ok(sent(9n).equals(outHeader(16, 0, 9n)));
  });

  it("does not splice a reply the pipes cannot hold, or a descriptor splice refuses", () => {
    assert.equal(splicer.fill(src, 0n, 4 << 20), undefined);
    const dirFd = fs.openSync(dir, "r");
    try {
      assert.equal(splicer.fill(dirFd, 0n, 65_536), undefined, "EINVAL: read it the ordinary way");
    } finally {
      fs.closeSync(dirFd);
    }
    assert.equal(splicer.fill(src, 0n, 100_000), 100_000, "the pipes still work afterwards");
    assert.ok(sent(10n).subarray(16).equals(data.subarray(0, 100_000)));
  });

  it("a reply never sent is dropped, not sent with the next one", () => {
    assert.equal(splicer.fill(src, 0n, 70_000), 70_000);
    splicer.discard();
    assert.equal(splicer.fill(src, 100_000n, 70_000), 70_000);
    assert.ok(sent(11n).subarray(16).equals(data.subarray(100_000, 170_000)));
  });
});
