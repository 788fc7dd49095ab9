import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { readTar, TarFormatError, type TarEntry } from "../../../src/image/tar-read";
import { toText } from "../../../src/sys/bytes";
import { makeTempDir, removeTree } from "../../helpers/tmp";

/** Every entry of `buf` read in chunks of `chunk` bytes, with its data as text. */
async function entries(buf: Buffer, chunk = 700): Promise<Array<TarEntry & { data: string }>> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
  }
  const out: Array<TarEntry & { data: string }> = [];
  await readTar(chunks(), async (e, data) => {
    const parts: Buffer[] = [];
    for await (const c of data) parts.push(Buffer.from(c));
    out.push({ ...e, data: Buffer.concat(parts).toString("latin1") });
  });
  return out;
}

describe("image: tar reader", () => {
  let root = "";
  beforeEach(() => (root = makeTempDir("tar-read")));
  afterEach(() => removeTree(root));

  for (const format of ["gnu", "posix", "ustar"]) {
    it(`reads GNU tar's ${format} format: long names and link targets, owners, data across chunks`, async () => {
      const src = path.join(root, "src");
      const long = `${"d".repeat(60)}/${"e".repeat(60)}`;
      fs.mkdirSync(path.join(src, long), { recursive: true });
      fs.writeFileSync(path.join(src, long, "f"), "x".repeat(1500));
      fs.symlinkSync(format === "ustar" ? "short" : `/${long}/f`, path.join(src, "l"));
      const file = path.join(root, "t.tar");
      execFileSync("tar", [
        `--format=${format}`,
        "--owner=1234",
        "--group=5678",
        "-cf",
        file,
        "-C",
        src,
        "l",
        "d".repeat(60),
      ]);
      const got = await entries(fs.readFileSync(file));
      const byPath = new Map(got.map((e) => [toText(e.path).replace(/\/$/, ""), e]));
      const f = byPath.get(`${long}/f`);
      assert.ok(f, [...byPath.keys()].join(" "));
      assert.equal(f.type, "File");
      assert.equal(f.data, "x".repeat(1500));
      assert.deepEqual([f.uid, f.gid], [1234, 5678]);
      const l = byPath.get("l");
      assert.equal(l?.type, "SymbolicLink");
      assert.equal(l?.linkpath, format === "ustar" ? "short" : `/${long}/f`);
      assert.equal(byPath.get(long)?.type, "Directory");
    });
  }

  it("a big uid is a base-256 number in GNU format; pax global headers apply to what follows", async () => {
    const src = path.join(root, "src");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "f"), "f");
    const gnu = path.join(root, "gnu.tar");
    execFileSync("tar", ["--format=gnu", "--owner=3000000000", "-cf", gnu, "-C", src, "f"]);
    assert.equal((await entries(fs.readFileSync(gnu)))[0]?.uid, 3000000000);
    const pax = path.join(root, "pax.tar");
    execFileSync("tar", ["--format=posix", "--pax-option=uid=77", "-cf", pax, "-C", src, "f"]);
    const [e] = await entries(fs.readFileSync(pax));
    assert.deepEqual([e?.path, e?.uid], ["f", 77]);
  });

  it("damaged archives: not a tar, a bad checksum later, a truncated entry", async () => {
    const rejects = (buf: Buffer, pattern: RegExp): Promise<void> =>
      assert.rejects(entries(buf), (e: Error) => e instanceof TarFormatError && pattern.test(e.message));
    await rejects(Buffer.alloc(0), /empty/);
    await rejects(Buffer.from("hello world\n".repeat(100)), /not a tar header/);
    const src = path.join(root, "src");
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, "a"), "a".repeat(600));
    fs.writeFileSync(path.join(src, "b"), "b");
    const file = path.join(root, "t.tar");
    execFileSync("tar", ["-cf", file, "-C", src, "a", "b"]);
    const good = fs.readFileSync(file);
    assert.equal((await entries(good)).length, 2);
    const bad = Buffer.from(good);
    bad[1536 + 10] = 0x41; // inside b's header
    await rejects(bad, /bad header checksum at byte 1536/);
    await rejects(good.subarray(0, 900), /unexpected end of archive/);
  });
});
