/**
 * src/layer/tar/store.ts and open.ts: a saved index reads back as the index it was, is used only for
 * the archive it was made for, is ignored (never an error) when malformed, and is saved beside the
 * archive or, where that fails, in the cache dir. No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { ArchiveReader, indexArchive } from "../../../../src/layer/tar/archive";
import { indexLocations, INDEX_SUFFIX, openArchive } from "../../../../src/layer/tar/open";
import { keyOf, loadIndex, serialize } from "../../../../src/layer/tar/store";
import type { TarNode } from "../../../../src/layer/tar/tree";
import { prng, randBytes } from "../../../helpers/prng";
import { makeTempDir, removeTree } from "../../../helpers/tmp";
import { plainIndex, plainTree, tarBytes, writeArchive, type TarEntry } from "../../../helpers/tar";

const ENTRIES: TarEntry[] = [
  { name: "d/", type: "5", mode: 0o750, uid: 3, gid: 4 },
  { name: "d/random", data: randBytes(prng(3), 3 * 1024 * 1024 + 17) },
  { name: "d/zeros", data: Buffer.alloc(2 * 1024 * 1024) },
  { name: "d/x", data: "xattrs", pax: { "SCHILY.xattr.user.a": "1", mtime: "5.000000001" } },
  { name: "d/hard", type: "1", linkname: "d/x" },
  { name: "sym", type: "2", linkname: "d/\u00e9\u0001" },
  { name: "dev", type: "3", devmajor: 4095, devminor: 1 << 19 },
  { name: "d/.wh..wh..opq", data: "" },
];

describe("tar layer: saved indexes", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const fds: number[] = [];
  beforeEach(() => {
    dir = makeTempDir("tarstore");
    env = { XDG_CACHE_HOME: path.join(dir, "cache") };
  });
  afterEach(() => {
    for (const fd of fds.splice(0)) fs.closeSync(fd);
    removeTree(dir);
  });

  function archive(name: string, gzip: boolean): string {
    return writeArchive(path.join(dir, name), ENTRIES, gzip);
  }

  function all(r: ArchiveReader, n: TarNode): Buffer {
    const buf = Buffer.alloc(n.size);
    assert.equal(r.read(n, buf, 0, n.size, 0), n.size);
    return buf;
  }

  for (const gzip of [false, true]) {
    it(`reads back what it saved (${gzip ? "gzip" : "plain"}), windows included`, () => {
      const p = archive("a.tar", gzip);
      const fd = fs.openSync(p, "r");
      fds.push(fd);
      const indexed = indexArchive(fd, 9n);
      const file = path.join(dir, "idx");
      fs.writeFileSync(file, serialize(indexed, keyOf(fd)));
      const loaded = loadIndex(file, keyOf(fd));
      assert.ok(loaded !== undefined);
      fds.push(loaded.fd);
      assert.deepEqual(plainIndex(loaded.index), plainIndex(indexed.index));
      const cps = indexed.index.checkpoints ?? [];
      assert.equal(cps.length > 2, gzip);
      cps.forEach((cp, i) => {
        if (!cp.member) assert.ok(loaded.window(i).equals(indexed.window(i)), `window ${i}`);
      });
      const fresh = new ArchiveReader(fd, indexed);
      const again = new ArchiveReader(fd, loaded);
      for (const n of plainTree(indexed.index.tree).nodes) assert.ok(all(again, n).equals(all(fresh, n)));
    });
  }

  it("is no index for another archive or a changed one, nor when malformed", () => {
    const p = archive("a.tar.gz", true);
    const fd = fs.openSync(p, "r");
    fds.push(fd);
    const key = keyOf(fd);
    const bytes = serialize(indexArchive(fd, 0n), key);
    const file = path.join(dir, "idx");
    const loads = (b: Buffer, k = key): boolean => {
      fs.writeFileSync(file, b);
      const l = loadIndex(file, k);
      if (l !== undefined) fs.closeSync(l.fd);
      return l !== undefined;
    };
    assert.ok(loads(bytes));
    for (const k of ["size", "mtimeNs", "dev", "ino", "hash"] as const) {
      assert.ok(!loads(bytes, { ...key, [k]: k === "size" ? key.size + 1 : `${key[k]}0` }), k);
    }
    assert.ok(!loads(bytes.subarray(0, bytes.length - 100)));
    assert.ok(!loads(bytes.subarray(0, 1000)));
    assert.ok(!loads(Buffer.from("garbage")));
    const flipped = Buffer.from(bytes);
    flipped.write("X", 20);
    assert.ok(!loads(flipped));
    assert.equal(loadIndex(path.join(dir, "missing"), key), undefined);
  });

  it("saves beside the archive, and the next open uses it", () => {
    const p = archive("layer.tar.gz", true);
    const first = openArchive(p, { env });
    first.close();
    assert.equal(first.source, "scanned");
    assert.equal(first.savedTo, p + INDEX_SUFFIX);
    assert.equal(fs.statSync(first.savedTo).mode & 0o777, fs.statSync(p).mode & 0o644);
    const second = openArchive(p, { env });
    second.close();
    assert.equal(second.source, "saved");
    assert.deepEqual(plainIndex(second.index), plainIndex(first.index));
  });

  it("falls back to the cache dir where the archive's dir takes no index", () => {
    const p = archive("layer.tar", false);
    fs.chmodSync(p, 0o600); // nobody else may read it, nor its index
    fs.mkdirSync(p + INDEX_SUFFIX); // a rename onto it fails: as good as a read-only directory here
    const [, cache] = indexLocations(p, env);
    assert.ok(cache!.startsWith(path.join(dir, "cache", "unionfs-ts") + "/"));
    const first = openArchive(p, { env });
    first.close();
    assert.equal(first.savedTo, cache);
    assert.equal(fs.statSync(cache!).mode & 0o777, 0o600);
    const second = openArchive(p, { env });
    second.close();
    assert.equal(second.source, "saved");
  });

  it("says when no place takes the index, and still opens the archive", () => {
    const p = archive("layer.tar", false);
    fs.mkdirSync(p + INDEX_SUFFIX);
    fs.writeFileSync(path.join(dir, "cache"), "a file where the cache dir would be");
    const warnings: string[] = [];
    const opened = openArchive(p, { env, warn: (m) => warnings.push(m) });
    opened.close();
    assert.equal(opened.savedTo, undefined);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /index not saved .*the next mount scans it again$/);
  });

  it("scans again when the archive changed since its index was saved", () => {
    const p = archive("layer.tar", false);
    openArchive(p, { env }).close();
    const raw = tarBytes([{ name: "other", data: "x" }]);
    const stat = fs.statSync(p);
    fs.writeFileSync(p, Buffer.concat([raw, Buffer.alloc(stat.size - raw.length)]));
    fs.utimesSync(p, stat.atime, stat.mtime); // same size and mtime: the content hash tells
    const again = openArchive(p, { env });
    again.close();
    assert.equal(again.source, "scanned");
    assert.deepEqual(again.index.tree.children.get(""), ["other"]);
  });

  it("refuses with the archive's path first", () => {
    const p = path.join(dir, "bad.tar");
    fs.writeFileSync(p, tarBytes([{ name: "../x", data: "" }]));
    assert.throws(() => openArchive(p, { env }), {
      name: "ArchiveError",
      message: `${p}: member '../x' escapes the root ('..')`,
    });
  });
});
