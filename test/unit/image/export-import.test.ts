import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { pipeline } from "node:stream/promises";
import { Header, Pack, ReadEntry, list } from "tar";
import { diffLayer, exportLayer, formatChanges, importLayer } from "../../../src/image";
import type { WhiteoutFormat } from "../../../src/whiteout";
import { makedev, normaliseEntryPath, unsafeEntryPath } from "../../../src/image/import";
import { lgetxattr, mknod } from "../../../src/sys/libc";
import { diffSnapshots, snapshotTree } from "../../helpers/snapshot";
import { makeTempDir, makeTree, removeTree } from "../../helpers/tmp";
import { makeLayerFixture, type LayerFixture } from "./fixture";

interface Listed {
  path: string;
  type: string;
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  size: number;
  linkpath: string | undefined;
}

async function listTar(file: string): Promise<Listed[]> {
  const out: Listed[] = [];
  await list({
    file,
    onReadEntry: (e) =>
      out.push({
        path: e.path,
        type: e.type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: e.size,
        linkpath: e.linkpath,
      }),
  });
  return out;
}

async function exportTo(upper: string, file: string, warnings: string[] = []): Promise<void> {
  await exportLayer(upper, fs.createWriteStream(file), { onWarning: (w) => warnings.push(w) });
}

/** A tar built entry by entry (names unchecked), for the malformed-input cases. */
async function craftTar(
  file: string,
  entries: Array<{ path: string; type?: "File" | "Link" | "SymbolicLink"; data?: string; linkpath?: string }>,
): Promise<void> {
  const pack = new Pack({ preservePaths: true });
  for (const e of entries) {
    const data = Buffer.from(e.data ?? "");
    const header = new Header({
      path: e.path,
      type: e.type ?? "File",
      size: e.type === undefined || e.type === "File" ? data.length : 0,
      mode: 0o644,
      linkpath: e.linkpath,
      mtime: new Date(0),
    });
    const entry = new ReadEntry(header);
    if (data.length > 0 && (e.type ?? "File") === "File") entry.write(data);
    entry.end();
    pack.add(entry);
  }
  pack.end();
  await pipeline(pack, fs.createWriteStream(file));
}

const isMarker = (rel: string): boolean => rel.split("/").some((c) => c.startsWith(".wh."));

/** The layer's content without whiteout markers of any format (so aufs and overlay forms compare). */
async function content(dir: string): Promise<string> {
  const snap = await snapshotTree(dir, { exclude: isMarker });
  return JSON.stringify(
    snap.filter((e) => !(e.type === "chardev" && e.rdev === 0) && !(e.path === "xw/w")),
    null,
    1,
  );
}

function usageError(pattern: RegExp): (e: Error) => boolean {
  return (e: Error) => e.name === "UsageError" && pattern.test(e.message) && !e.message.includes("\n");
}

/** The entries of the fixture's archive, in order. */
const FIXTURE_TAR_NAMES = [
  ".wh.top",
  "copied",
  "d/",
  "d/.wh.gone",
  "d/.wh.ovl",
  "d/f",
  "fifo",
  "link-to-new",
  "new",
  "opq-aufs/",
  "opq-aufs/.wh..wh..opq",
  "opq-aufs/mine",
  "opq-xattr/",
  "opq-xattr/.wh..wh..opq",
  "opq-xattr/mine",
  "ro-dir/",
  "ro-dir/inside",
  "suid",
  "sym",
  "xw/",
  "xw/.wh.w",
  "xw/real",
];

describe("image: export and import", () => {
  let f: LayerFixture | undefined;
  const dirs: string[] = [];
  const tmp = (label: string): string => {
    const d = makeTempDir(label);
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    if (f) removeTree(f.root);
    f = undefined;
    for (const d of dirs.splice(0)) removeTree(d);
  });

  it("exports every whiteout format as .wh. files, opaque markers after their dir, in sorted order", async () => {
    f = makeLayerFixture();
    const out = path.join(tmp("tar"), "layer.tar");
    const warnings: string[] = [];
    await exportTo(f.upper, out, warnings);
    assert.deepEqual(warnings, []);
    const entries = await listTar(out);
    assert.deepEqual(
      entries.map((e) => e.path),
      FIXTURE_TAR_NAMES,
    );
    const by = new Map(entries.map((e) => [e.path, e]));
    for (const wh of [".wh.top", "d/.wh.gone", "d/.wh.ovl", "xw/.wh.w", "opq-xattr/.wh..wh..opq"]) {
      assert.equal(by.get(wh)?.type, "File", wh);
      assert.equal(by.get(wh)?.size, 0, wh);
    }
    // The first name of a hard-linked file is the file, the next one a link to it.
    assert.equal(by.get("link-to-new")?.type, "File");
    assert.equal(by.get("new")?.type, "Link");
    assert.equal(by.get("new")?.linkpath, "link-to-new");
    assert.equal(by.get("sym")?.type, "SymbolicLink");
    assert.equal(by.get("sym")?.linkpath, "new");
    assert.equal(by.get("fifo")?.type, "FIFO");
    assert.equal(by.get("fifo")?.mode, 0o640);
    assert.deepEqual([by.get("suid")?.mode, by.get("suid")?.uid, by.get("suid")?.gid], [0o4755, 1234, 5678]);
    assert.equal(by.get("ro-dir/")?.mode, 0o555);
  });

  it("--exclude leaves paths out of the archive with all they hold, their whiteouts too", async () => {
    f = makeLayerFixture();
    const out = path.join(tmp("tar"), "layer.tar");
    await exportLayer(f.upper, fs.createWriteStream(out), { exclude: ["d", "**/mine", "/top"] });
    assert.deepEqual(
      (await listTar(out)).map((e) => e.path),
      FIXTURE_TAR_NAMES.filter((n) => !n.startsWith("d/") && !n.endsWith("/mine") && n !== ".wh.top"),
    );
  });

  it("is deterministic: two exports of the same layer are identical", async () => {
    f = makeLayerFixture();
    const dir = tmp("tar");
    await exportTo(f.upper, path.join(dir, "1.tar"));
    fs.readFileSync(path.join(f.upper, "new")); // touch atimes in between
    await exportTo(f.upper, path.join(dir, "2.tar"));
    assert.ok(fs.readFileSync(path.join(dir, "1.tar")).equals(fs.readFileSync(path.join(dir, "2.tar"))));
  });

  for (const format of ["aufs", "overlay"] as WhiteoutFormat[]) {
    it(`round trip (import --format ${format}): same changes, same content, owners and modes`, async () => {
      f = makeLayerFixture();
      const dir = tmp("tar");
      const tarFile = path.join(dir, "layer.tar");
      await exportTo(f.upper, tarFile);
      const target = path.join(dir, "imported");
      const summary = await importLayer(tarFile, target, { format });
      assert.equal(summary.whiteouts, 4);
      assert.equal(summary.opaqueDirs, 2);
      assert.equal(formatChanges(diffLayer(target, [f.lower])), formatChanges(diffLayer(f.upper, [f.lower])));
      assert.deepEqual(
        diffSnapshots(JSON.parse(await content(f.upper)), JSON.parse(await content(target))),
        [],
      );
      // Hard links stay hard links.
      assert.equal(
        fs.statSync(path.join(target, "new")).ino,
        fs.statSync(path.join(target, "link-to-new")).ino,
      );
      assert.ok(!fs.existsSync(path.join(target, ".wh..wh.unionfs")));
      if (format === "aufs") {
        assert.ok(fs.statSync(path.join(target, "d", ".wh.gone")).isFile());
        assert.ok(fs.statSync(path.join(target, "opq-xattr", ".wh..wh..opq")).isFile());
        // Exporting the imported layer again gives the very same archive.
        await exportTo(target, path.join(dir, "again.tar"));
        assert.ok(fs.readFileSync(tarFile).equals(fs.readFileSync(path.join(dir, "again.tar"))));
      } else {
        for (const wh of ["d/gone", "d/ovl", "top", "xw/w"]) {
          const st = fs.lstatSync(path.join(target, wh));
          assert.ok(st.isCharacterDevice() && st.rdev === 0, wh);
        }
        for (const d of ["opq-aufs", "opq-xattr"]) {
          assert.equal(lgetxattr(path.join(target, d), "trusted.overlay.opaque").toString(), "y");
          assert.ok(!fs.existsSync(path.join(target, d, ".wh..wh..opq")));
        }
      }
    });
  }

  it("skips device nodes and non-UTF-8 names with a warning; imports devices other tools archived", async () => {
    const root = makeTree({ up: { ok: "1" } }, "image");
    dirs.push(root);
    const up = path.join(root, "up");
    mknod(path.join(up, "null"), 0o020000 | 0o666, makedev(1, 3));
    fs.writeFileSync(Buffer.from(`${up}/bad\xff`, "latin1"), "");
    const warnings: string[] = [];
    const tarFile = path.join(root, "l.tar");
    await exportTo(up, tarFile, warnings);
    assert.equal(warnings.length, 2, warnings.join("\n"));
    assert.match(warnings[0] ?? "", /bad\\xff.*not UTF-8/);
    assert.match(warnings[1] ?? "", /\/null: device nodes are not archived/);
    assert.deepEqual(
      (await listTar(tarFile)).map((e) => e.path),
      ["ok"],
    );

    // A char device archived by another tool (GNU tar, POSIX and GNU formats) is created with mknod; a
    // 0/0 one (an overlay whiteout) is left out with a warning.
    const src = path.join(root, "src");
    fs.mkdirSync(src);
    mknod(path.join(src, "tty"), 0o020000 | 0o620, makedev(136, 300));
    fs.chmodSync(path.join(src, "tty"), 0o620);
    const { execFileSync } = await import("node:child_process");
    for (const format of ["posix", "gnu"]) {
      const tarFile = path.join(root, `${format}.tar`);
      execFileSync("tar", [`--format=${format}`, "-cf", tarFile, "-C", src, "tty"]);
      const target = path.join(root, `with-dev-${format}`);
      await importLayer(tarFile, target);
      const st = fs.lstatSync(path.join(target, "tty"));
      assert.ok(st.isCharacterDevice(), format);
      assert.equal(st.rdev, makedev(136, 300), format);
      assert.equal(st.mode & 0o7777, 0o620, format);
    }
    mknod(path.join(src, "wh"), 0o020000, 0);
    const whTar = path.join(root, "wh.tar");
    execFileSync("tar", ["-cf", whTar, "-C", src, "wh"]);
    const importWarnings: string[] = [];
    await importLayer(whTar, path.join(root, "wh-dev"), { onWarning: (w) => importWarnings.push(w) });
    assert.deepEqual(fs.readdirSync(path.join(root, "wh-dev")), []);
    assert.match(importWarnings.join("\n"), /left out 'wh': a character device 0\/0/);
  });

  it("round trip of long names, long link targets and UTF-8 names (pax headers)", async () => {
    const long = "n".repeat(120);
    const root = makeTree({ up: { [long]: { [long]: { "ünï €": "deep" } }, ".wh.é": "" } }, "image");
    dirs.push(root);
    const up = path.join(root, "up");
    fs.symlinkSync(`${long}/${long}/ünï €`, path.join(up, "l"));
    fs.linkSync(path.join(up, long, long, "ünï €"), path.join(up, "hard"));
    const tarFile = path.join(root, "l.tar");
    await exportTo(up, tarFile);
    const target = path.join(root, "imported");
    await importLayer(tarFile, target);
    assert.deepEqual(diffSnapshots(await snapshotTree(up), await snapshotTree(target)), []);
    assert.equal(formatChanges(diffLayer(target)), formatChanges(diffLayer(up)));
    assert.match(formatChanges(diffLayer(target)), /^D \/é$/m);
  });

  it("helpers: entry names are normalised and checked", () => {
    assert.equal(normaliseEntryPath("./a/b/"), "a/b");
    assert.equal(normaliseEntryPath("./"), "");
    assert.equal(unsafeEntryPath("/etc/passwd"), "is an absolute path");
    assert.equal(unsafeEntryPath("a/../../b"), "contains '..'");
    assert.equal(unsafeEntryPath("a/..b/c"), undefined);
    assert.equal(makedev(8, 1), 0x801);
    assert.equal(makedev(259, 65536), 0x10010300);
  });

  describe("malformed input: one line, nothing created", () => {
    it("a missing archive", async () => {
      const target = path.join(tmp("imp"), "t");
      await assert.rejects(importLayer("/nonexistent/layer.tar", target), usageError(/does not exist/));
      assert.ok(!fs.existsSync(target));
    });

    it("a file that is not a tar", async () => {
      const dir = tmp("imp");
      fs.writeFileSync(path.join(dir, "x.tar"), "this is not a tar archive\n".repeat(40));
      const target = path.join(dir, "t");
      await assert.rejects(importLayer(path.join(dir, "x.tar"), target), usageError(/is not a tar archive/));
      assert.ok(!fs.existsSync(target));
    });

    for (const [what, entries, pattern] of [
      [
        "a '..' entry",
        [
          { path: "ok", data: "1" },
          { path: "../evil", data: "x" },
        ],
        /'\.\.\/evil' contains '\.\.'/,
      ],
      ["a nested '..' entry", [{ path: "a/../../evil", data: "x" }], /contains '\.\.'/],
      ["an absolute entry", [{ path: "/etc/evil", data: "x" }], /'\/etc\/evil' is an absolute path/],
      [
        "a hard link out of the layer",
        [{ path: "l", type: "Link", linkpath: "../../etc/passwd" }],
        /hard link to '\.\.\/\.\.\/etc\/passwd'/,
      ],
    ] as const) {
      it(`an archive with ${what}`, async () => {
        const dir = tmp("imp");
        const tarFile = path.join(dir, "evil.tar");
        await craftTar(tarFile, [...entries]);
        const target = path.join(dir, "t");
        await assert.rejects(importLayer(tarFile, target), usageError(pattern));
        assert.ok(!fs.existsSync(target));
        assert.ok(!fs.existsSync(path.join(dir, "evil")));
      });
    }

    it("an entry that goes through a symlink the archive made: nothing is left behind", async () => {
      const dir = tmp("imp");
      const outside = path.join(dir, "outside");
      fs.mkdirSync(outside);
      const tarFile = path.join(dir, "evil.tar");
      await craftTar(tarFile, [
        { path: "s", type: "SymbolicLink", linkpath: outside },
        { path: "s/pwned", data: "x" },
      ]);
      const target = path.join(dir, "t");
      await assert.rejects(importLayer(tarFile, target), usageError(/symbolic link/));
      assert.ok(!fs.existsSync(target));
      assert.deepEqual(fs.readdirSync(outside), []);
    });

    it("a target that is not empty, or not a directory", async () => {
      f = makeLayerFixture();
      const dir = tmp("imp");
      const tarFile = path.join(dir, "layer.tar");
      await exportTo(f.upper, tarFile);
      fs.mkdirSync(path.join(dir, "full"));
      fs.writeFileSync(path.join(dir, "full", "x"), "");
      await assert.rejects(importLayer(tarFile, path.join(dir, "full")), usageError(/is not empty/));
      assert.deepEqual(fs.readdirSync(path.join(dir, "full")), ["x"]);
      await assert.rejects(importLayer(tarFile, tarFile), usageError(/is not a directory/));
    });

    it("export of a missing layer", async () => {
      await assert.rejects(
        exportLayer("/nonexistent/upper", fs.createWriteStream("/dev/null")),
        usageError(/^layer '\/nonexistent\/upper' does not exist$/),
      );
    });
  });
});
