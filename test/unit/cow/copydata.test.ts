import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { copyData } from "../../../src/cow/copydata";

describe("copyData", () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-copy-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function copy(src: string, dst: string): void {
    const a = fs.openSync(src, "r");
    const b = fs.openSync(dst, "wx");
    try {
      copyData(a, b, fs.fstatSync(a, { bigint: true }).size);
    } finally {
      fs.closeSync(a);
      fs.closeSync(b);
    }
  }

  const sha = (p: string): string => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");

  it("keeps holes: a 64 MiB file with 8 KiB of data stays small", () => {
    const src = path.join(dir, "sparse");
    const fd = fs.openSync(src, "w");
    fs.writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0);
    fs.writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, 32 << 20);
    fs.ftruncateSync(fd, 64 << 20);
    fs.closeSync(fd);
    copy(src, path.join(dir, "dst"));
    const st = fs.statSync(path.join(dir, "dst"));
    assert.equal(st.size, 64 << 20);
    assert.ok(st.blocks * 512 < 1 << 20, `copy allocated ${st.blocks * 512} bytes`);
    assert.equal(sha(path.join(dir, "dst")), sha(src));
  });

  it("copies a dense file of odd size byte for byte", () => {
    const src = path.join(dir, "dense");
    fs.writeFileSync(src, crypto.randomBytes((3 << 20) + 17));
    copy(src, path.join(dir, "dst"));
    assert.equal(sha(path.join(dir, "dst")), sha(src));
  });
});
