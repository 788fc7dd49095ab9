/**
 * tar-split: a layer's tar rebuilt byte for byte from its recorded headers and its unpacked files, for
 * tars as GNU tar writes them (pax and GNU long names, hard links, symlinks, FIFOs, xattrs, big files).
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pipeline } from "node:stream/promises";
import { chainIds, rebuildTar, sha256, TarSplitRecorder } from "../../../../src/image/store";
import { TarSplitMismatch } from "../../../../src/image/store/tarsplit";
import { checkDigest } from "../../../../src/image/store/digest";
import { UsageError } from "../../../../src/errors";
import { makeTempDir, removeTree } from "../../../helpers/tmp";

function tar(args: string[]): void {
  const r = spawnSync("tar", args, { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

async function rebuilt(split: string, dir: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of rebuildTar(split, dir)) chunks.push(c);
  return Buffer.concat(chunks);
}

describe("tar-split", () => {
  let tmp: string;
  let src: string;
  beforeEach(() => {
    tmp = makeTempDir("tarsplit");
    src = path.join(tmp, "src");
    const deep = path.join(src, "d".repeat(120), "e".repeat(60));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, `${"n".repeat(110)}.txt`), "deep\n");
    fs.writeFileSync(path.join(src, "a"), "hello\n");
    fs.writeFileSync(
      path.join(src, "big"),
      Buffer.alloc(3 << 20, 1).map((_, i) => i & 0xff),
    );
    fs.writeFileSync(path.join(src, "empty"), "");
    fs.linkSync(path.join(src, "a"), path.join(src, "hard"));
    fs.symlinkSync("/absolute/target", path.join(src, "sym"));
    spawnSync("mkfifo", [path.join(src, "fifo")]);
    spawnSync("setfattr", ["-n", "user.note", "-v", "kept", path.join(src, "a")]);
  });
  afterEach(() => removeTree(tmp));

  for (const format of ["pax", "gnu"] as const) {
    it(`rebuilds a ${format} tar byte for byte from its unpacked files`, async () => {
      const file = path.join(tmp, `${format}.tar`);
      tar([`--format=${format}`, "--xattrs", "-C", src, "-cf", file, "."]);
      const split = path.join(tmp, "split.json.gz");
      const rec = new TarSplitRecorder(split);
      await pipeline(fs.createReadStream(file), rec);
      assert.equal(rec.fileBytes, 6 + 5 + (3 << 20));
      assert.ok(fs.statSync(split).size < 8192, "the split holds headers, not data");
      const out = path.join(tmp, "out");
      fs.mkdirSync(out);
      tar(["--xattrs", "-C", out, "-xf", file]);
      assert.ok((await rebuilt(split, out)).equals(fs.readFileSync(file)));
    });
  }

  it("fails with TarSplitMismatch when a file is missing or shorter, never padding it", async () => {
    const file = path.join(tmp, "t.tar");
    tar(["-C", src, "-cf", file, "a", "big"]);
    const split = path.join(tmp, "split.json.gz");
    await pipeline(fs.createReadStream(file), new TarSplitRecorder(split));
    const out = path.join(tmp, "out");
    fs.mkdirSync(out);
    tar(["-C", out, "-xf", file]);
    fs.truncateSync(path.join(out, "big"), 100);
    await assert.rejects(rebuilt(split, out), TarSplitMismatch);
    fs.rmSync(path.join(out, "a"));
    fs.symlinkSync("big", path.join(out, "a"));
    await assert.rejects(rebuilt(split, out), TarSplitMismatch, "a symlink is not followed");
  });

  it("refuses a stream that ends inside an entry", async () => {
    const file = path.join(tmp, "t.tar");
    tar(["-C", src, "-cf", file, "big"]);
    const cut = path.join(tmp, "cut.tar");
    fs.writeFileSync(cut, fs.readFileSync(file).subarray(0, 100_000));
    await assert.rejects(
      pipeline(fs.createReadStream(cut), new TarSplitRecorder(path.join(tmp, "s"))),
      /middle of an entry/,
    );
  });
});

describe("digests and chain IDs", () => {
  it("computes chain IDs as the OCI image spec defines them", () => {
    const a = sha256("a");
    const b = sha256("b");
    const c = sha256("c");
    const ab = sha256(`${a} ${b}`);
    assert.deepEqual(chainIds([a, b, c]), [a, ab, sha256(`${ab} ${c}`)]);
    assert.deepEqual(chainIds([]), []);
  });

  it("accepts sha256 digests only, with one line saying why", () => {
    assert.throws(
      () => checkDigest(`sha512:${"0".repeat(128)}`, "x"),
      (e: unknown) => e instanceof UsageError && /other than sha256/.test(e.message),
    );
    assert.throws(() => checkDigest("sha256:ABC", "x"), UsageError);
    assert.equal(checkDigest(sha256("x"), "x"), sha256("x"));
  });
});
