/**
 * src/layer/tar (scan.ts, tree.ts, archive.ts): the index of crafted archives — ustar, PAX, GNU long
 * names, hard links, repeated members, implicit parents, whiteouts — and what is refused: escaping
 * paths, corrupt and truncated archives, sparse members, other compressions. No mounts.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import {
  ArchiveReader,
  detect,
  indexArchive,
  type ArchiveIndex,
  type Indexed,
} from "../../../../src/layer/tar/archive";
import { ArchiveError } from "../../../../src/layer/tar/header";
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG } from "../../../../src/layer/tar/scan";
import type { TarNode } from "../../../../src/layer/tar/tree";
import { lsetxattr, mknod } from "../../../../src/sys/libc";
import { makeTempDir, removeTree } from "../../../helpers/tmp";
import { paxRecord, plainTree, tarBytes, type TarEntry } from "../../../helpers/tar";

const S = 1_000_000_000n;

describe("tar layer: the index of an archive", () => {
  let dir: string;
  let fds: number[] = [];
  beforeEach(() => (dir = makeTempDir("tarindex")));
  afterEach(() => {
    for (const fd of fds) fs.closeSync(fd);
    fds = [];
    removeTree(dir);
  });

  function open(bytes: Buffer, name = "a.tar"): number {
    const p = path.join(dir, name);
    fs.writeFileSync(p, bytes);
    const fd = fs.openSync(p, "r");
    fds.push(fd);
    return fd;
  }

  function index(entries: TarEntry[] | Buffer, gzip = false): ArchiveIndex {
    const raw = Buffer.isBuffer(entries) ? entries : tarBytes(entries);
    return indexArchive(open(gzip ? zlib.gzipSync(raw) : raw), 7n * S).index;
  }

  function node(idx: ArchiveIndex, p: string): TarNode {
    const i = idx.tree.entries.get(p);
    assert.ok(i !== undefined, `no entry ${p}`);
    return idx.tree.node(i);
  }

  function data(indexed: Indexed, fd: number, p: string): string {
    const n = node(indexed.index, p);
    const buf = Buffer.alloc(n.size);
    new ArchiveReader(fd, indexed).read(n, buf, 0, n.size, 0);
    return buf.toString("latin1");
  }

  function refused(entries: TarEntry[] | Buffer, pattern: RegExp, gzip = false): void {
    assert.throws(
      () => index(entries, gzip),
      (e: Error) => e instanceof ArchiveError && pattern.test(e.message) && !e.message.includes("\n"),
    );
  }

  it("records every kind of member with its attributes and data offset", () => {
    const raw = tarBytes([
      { name: "d/", type: "5", mode: 0o750, uid: 1000, gid: 100, mtime: 1234 },
      { name: "d/f", data: "hello", mode: 0o4755, uid: 7, gid: 8 },
      { name: "d/l", type: "2", linkname: "../x/./y" },
      { name: "c", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
      { name: "b", type: "4", devmajor: 8, devminor: 1 },
      { name: "p", type: "6" },
    ]);
    const fd = open(raw);
    const indexed = indexArchive(fd, 0n);
    const idx = indexed.index;
    assert.equal(idx.compression, "none");
    const d = node(idx, "/d");
    assert.deepEqual(
      [d.type, d.mode, d.uid, d.gid, d.mtimeNs, d.nlink],
      [S_IFDIR, 0o750, 1000, 100, 1234n * S, 2],
    );
    const f = node(idx, "/d/f");
    assert.deepEqual([f.type, f.mode, f.uid, f.gid, f.size, f.nlink], [S_IFREG, 0o4755, 7, 8, 5, 1]);
    assert.equal(raw.toString("latin1", f.offset, f.offset + 5), "hello");
    assert.equal(data(indexed, fd, "/d/f"), "hello");
    assert.deepEqual([node(idx, "/d/l").type, node(idx, "/d/l").target], [S_IFLNK, "../x/./y"]);
    assert.deepEqual(
      [node(idx, "/c").type, node(idx, "/c").rdevMajor, node(idx, "/c").rdevMinor],
      [S_IFCHR, 1, 3],
    );
    assert.equal(node(idx, "/b").type, S_IFBLK);
    assert.equal(node(idx, "/p").type, S_IFIFO);
    assert.deepEqual(idx.tree.children.get(""), ["d", "c", "b", "p"]);
    assert.deepEqual(idx.tree.children.get("/d"), ["f", "l"]);
  });

  it("applies PAX records: long path and link, ns times, ids, size, xattrs (binary values too)", () => {
    const long = `${"x".repeat(150)}/${"é".repeat(60)}`;
    const cap = Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const idx = index([
      {
        name: "short",
        data: "abc",
        pax: {
          path: long,
          mtime: "1700000000.123456789",
          atime: "1700000001.5",
          ctime: "-1.25",
          uid: "3000000000",
          gid: "42",
          "SCHILY.xattr.user.comment": "hi",
          "SCHILY.xattr.security.capability": cap,
        },
      },
      { name: "ln", type: "2", pax: { linkpath: "t".repeat(300) } },
    ]);
    const n = node(idx, `/${Buffer.from(long).toString("latin1")}`);
    assert.equal(n.mtimeNs, 1_700_000_000_123_456_789n);
    assert.equal(n.atimeNs, 1_700_000_001_500_000_000n);
    assert.equal(n.ctimeNs, -1_250_000_000n);
    assert.deepEqual([n.uid, n.gid, n.size], [3_000_000_000, 42, 3]);
    assert.deepEqual([...n.xattrs!.keys()], ["user.comment", "security.capability"]);
    assert.ok(n.xattrs!.get("security.capability")!.equals(cap));
    assert.equal(node(idx, "/ln").target, "t".repeat(300));
    assert.equal(node(idx, "/" + "x".repeat(150)).type, S_IFDIR);
  });

  it("reads GNU long names and links, GNU base-256 sizes, and a global PAX header", () => {
    const name = `${"n".repeat(120)}/file`;
    const idx = index([
      { name: "PaxGlobal", type: "g", data: paxRecord("uname", "somebody") },
      { name, gnuLong: true, data: "data" },
      { name: `${"n".repeat(120)}/link`, type: "2", linkname: "L".repeat(200), gnuLong: true },
      { name: "big", data: "12", base256Size: true, gnu: true },
    ]);
    assert.equal(node(idx, `/${name}`).size, 4);
    assert.equal(node(idx, `/${"n".repeat(120)}/link`).target, "L".repeat(200));
    assert.equal(node(idx, "/big").size, 2);
  });

  it("resolves hard links to the node their target names at that point", () => {
    const raw = tarBytes([
      { name: "a", data: "v1", mode: 0o600 },
      { name: "b", type: "1", linkname: "./a", mode: 0o777 },
      { name: "c", type: "1", linkname: "b" },
      { name: "a", data: "v2!" },
    ]);
    const fd = open(raw);
    const indexed = indexArchive(fd, 0n);
    const idx = indexed.index;
    const [a, b, c] = ["/a", "/b", "/c"].map((p) => idx.tree.entries.get(p));
    assert.equal(b, c);
    assert.notEqual(a, b);
    assert.deepEqual([node(idx, "/b").nlink, node(idx, "/b").mode, node(idx, "/a").nlink], [2, 0o600, 1]);
    assert.equal(data(indexed, fd, "/b"), "v1");
    assert.equal(data(indexed, fd, "/a"), "v2!");
  });

  it("repeated members: the last wins; a directory over a directory keeps its contents", () => {
    const idx = index([
      { name: "d", type: "5", mode: 0o700 },
      { name: "d/keep", data: "k" },
      { name: "d/", type: "5", mode: 0o711 },
      { name: "e", type: "5" },
      { name: "e/gone", data: "g" },
      { name: "e", data: "now a file" },
      { name: "f", data: "file" },
      { name: "f/x", data: "under a former file" },
    ]);
    assert.equal(node(idx, "/d").mode, 0o711);
    assert.ok(idx.tree.entries.has("/d/keep"));
    assert.equal(node(idx, "/e").type, S_IFREG);
    assert.ok(!idx.tree.entries.has("/e/gone"));
    assert.equal(node(idx, "/f").type, S_IFDIR);
    assert.ok(idx.tree.entries.has("/f/x"));
    assert.deepEqual(idx.tree.children.get("")?.sort(), ["d", "e", "f"]);
    // Nodes nothing names any more are gone.
    assert.equal(idx.tree.count, idx.tree.entries.size);
  });

  it("makes implicit parents 0755 root directories dated by the archive, and takes ./ as the root", () => {
    const idx = index([
      { name: "./", type: "5", mode: 0o700, uid: 5 },
      { name: "./a/b/c", data: "x" },
    ]);
    for (const p of ["/a", "/a/b"]) {
      const d = node(idx, p);
      assert.deepEqual([d.type, d.mode, d.uid, d.gid, d.mtimeNs], [S_IFDIR, 0o755, 0, 0, 7n * S]);
    }
    assert.deepEqual([node(idx, "").mode, node(idx, "").uid, node(idx, "").nlink], [0o700, 5, 3]);
    assert.equal(index([{ name: "x", data: "" }]).tree.node(0).mode, 0o755);
  });

  it("keeps OCI whiteouts and opaque markers as entries of their directory", () => {
    const idx = index([
      { name: "d/.wh..wh..opq", data: "" },
      { name: "d/.wh.gone", data: "" },
      { name: ".wh.top", data: "" },
    ]);
    assert.deepEqual(idx.tree.children.get("/d"), [".wh..wh..opq", ".wh.gone"]);
    assert.deepEqual(idx.tree.children.get(""), ["d", ".wh.top"]);
  });

  it("refuses members and hard links that escape the root", () => {
    refused([{ name: "../evil", data: "x" }], /member '\.\.\/evil' escapes the root/);
    refused([{ name: "a/../../evil", data: "x" }], /escapes the root/);
    refused([{ name: "/etc/passwd", data: "x" }], /'\/etc\/passwd' has an absolute path/);
    refused([{ name: "x", pax: { path: "a/../../b" } }], /escapes the root/);
    refused(
      [
        { name: "x", data: "" },
        { name: "l", type: "1", linkname: "../x" },
      ],
      /hard link 'l' to/,
    );
    refused([{ name: "l", type: "1", linkname: "nowhere" }], /no such member before it/);
    refused(
      [
        { name: "d", type: "5" },
        { name: "l", type: "1", linkname: "d" },
      ],
      /to directory 'd'/,
    );
  });

  it("refuses corrupt and truncated archives, plain and gzip, with one line", () => {
    const good = tarBytes([
      { name: "a", data: "x".repeat(2000) },
      { name: "b", data: "y" },
    ]);
    const badSum = Buffer.from(good);
    badSum[2560 + 1]! ^= 0xff; // b's header (a: header + 4 data blocks)
    refused(badSum, /bad tar header checksum at offset 2560/);
    refused(good.subarray(0, 1500), /truncated member data/);
    refused(good.subarray(0, 2560 + 100), /truncated tar header/);
    const gz = zlib.gzipSync(good);
    refused(gz.subarray(0, gz.length - 30), /truncated gzip data/);
    const flipped = Buffer.from(gz);
    flipped[flipped.length - 6]! ^= 0xff; // the CRC
    refused(flipped, /corrupt gzip data: incorrect data check/);
    refused(
      Buffer.concat([zlib.gzipSync(Buffer.from("not a tar at all")), Buffer.alloc(600)]),
      /not a tar archive/,
    );
  });

  it("refuses sparse members, multi-volume members and other compressions", () => {
    refused([{ name: "s", type: "S", gnu: true }], /sparse member 's' is not supported/);
    refused([{ name: "s", pax: { "GNU.sparse.major": "1" } }], /sparse member/);
    refused([{ name: "m", type: "M" }], /unsupported type 'M'/);
    refused(
      Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]),
      /^zstd-compressed archives cannot be read in place \(plain tar and gzip can\): decompress it first$/,
    );
    refused(Buffer.from("BZh91AY&SY"), /bzip2/);
    assert.equal(detect(open(Buffer.from("just text, not an archive\n".repeat(40)), "t.txt")), undefined);
    assert.equal(detect(open(Buffer.alloc(10240), "empty.tar")), "none");
  });

  it("indexes a gzip archive the same as the plain one, and reads its data", () => {
    const entries: TarEntry[] = [
      { name: "a", data: "first" },
      { name: "dir/b", data: Buffer.alloc(300_000, 7) },
      { name: "dir/c", type: "1", linkname: "a" },
    ];
    const raw = tarBytes(entries);
    const plain = indexArchive(open(raw), 0n).index;
    const fd = open(zlib.gzipSync(raw), "a.tar.gz");
    const indexed = indexArchive(fd, 0n);
    const gz = indexed.index;
    assert.equal(gz.compression, "gzip");
    assert.deepEqual(plainTree(gz.tree), plainTree(plain.tree));
    assert.equal(gz.size, raw.length);
    assert.equal(data(indexed, fd, "/dir/c"), "first");
    assert.equal(data(indexed, fd, "/dir/b"), Buffer.alloc(300_000, 7).toString("latin1"));
  });

  for (const format of ["gnu", "pax"]) {
    it(`agrees with lstat of the tree GNU tar archived (--format=${format})`, () => {
      const src = path.join(dir, "src");
      fs.mkdirSync(path.join(src, "d/e"), { recursive: true });
      fs.writeFileSync(path.join(src, "d/f"), "content\n".repeat(1000));
      fs.linkSync(path.join(src, "d/f"), path.join(src, "d/e/hard"));
      fs.symlinkSync("../f", path.join(src, "d/e/sym"));
      fs.writeFileSync(path.join(src, "x"), "");
      fs.chmodSync(path.join(src, "x"), 0o2741);
      fs.chownSync(path.join(src, "x"), 1234, 5678);
      mknod(path.join(src, "fifo"), 0o010600, 0);
      lsetxattr(path.join(src, "d/f"), "user.note", Buffer.from([0, 1, 2, 255]), 0);
      const archive = path.join(dir, `src.${format}.tar`);
      const xattrs = format === "pax" ? ["--xattrs"] : [];
      const tar = spawnSync("tar", [...xattrs, `--format=${format}`, "-cf", archive, "-C", src, "."]);
      assert.equal(tar.status, 0, tar.stderr.toString());
      const fd = fs.openSync(archive, "r");
      fds.push(fd);
      const indexed = indexArchive(fd, 0n);
      const idx = indexed.index;
      const walk = (rel: string): void => {
        const st = fs.lstatSync(src + rel, { bigint: true });
        const n = node(idx, rel);
        const what = `${format} ${rel}`;
        assert.equal(BigInt(n.type | n.mode), st.mode, what);
        assert.deepEqual([BigInt(n.uid), BigInt(n.gid)], [st.uid, st.gid], what);
        const mtime = format === "pax" ? st.mtimeNs : (st.mtimeNs / S) * S;
        assert.equal(n.mtimeNs, mtime, what);
        if (st.isFile()) {
          assert.equal(BigInt(n.nlink), st.nlink, what);
          assert.equal(data(indexed, fd, rel), fs.readFileSync(src + rel, "latin1"), what);
        }
        if (st.isSymbolicLink()) assert.equal(n.target, fs.readlinkSync(src + rel), what);
        if (!st.isDirectory()) return;
        assert.deepEqual(
          [...(idx.tree.children.get(rel) ?? [])].sort(),
          fs.readdirSync(src + rel).sort(),
          what,
        );
        for (const name of fs.readdirSync(src + rel)) walk(`${rel}/${name}`);
      };
      walk("");
      assert.equal(idx.tree.entries.get("/d/f"), idx.tree.entries.get("/d/e/hard"));
      if (format === "pax")
        assert.deepEqual(node(idx, "/d/f").xattrs?.get("user.note"), Buffer.from([0, 1, 2, 255]));
    });
  }
});
