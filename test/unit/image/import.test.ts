/**
 * `import` regression tests, one per defect of issue 15 (symlink targets, zstd, image archives instead
 * of layers, extended attributes), on archives written by GNU tar, gzip and zstd as other tools would.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { exportLayer, importLayer } from "../../../src/image";
import { zstdDecompressor } from "../../../src/image/archive-input";
import { importLayerStream } from "../../../src/image/import";
import { lgetxattr, llistxattr, lsetxattr } from "../../../src/sys/libc";
import { makeTempDir, removeTree, writeTree } from "../../helpers/tmp";

function usageError(pattern: RegExp): (e: Error) => boolean {
  return (e: Error) => {
    assert.equal(e.name, "UsageError", e.stack);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), e.message);
    return true;
  };
}

/** `writeTree` into `dir`, made first. */
function tree(dir: string, spec: Parameters<typeof writeTree>[1]): void {
  fs.mkdirSync(dir, { recursive: true });
  writeTree(dir, spec);
}

function gnuTar(file: string, dir: string, ...extra: string[]): void {
  execFileSync("tar", [...extra, "-cf", file, "-C", dir, "."]);
}

describe("image: import", () => {
  let root = "";
  beforeEach(() => (root = makeTempDir("import")));
  afterEach(() => removeTree(root));
  const p = (...parts: string[]): string => path.join(root, ...parts);

  it("import rewrites symlink targets: absolute, '..' and non-UTF-8 targets are stored byte for byte", async () => {
    tree(p("src"), { usr: { lib64: {} }, etc: {} });
    fs.symlinkSync("/usr/lib64", p("src", "lib64"));
    fs.symlinkSync("../../x", p("src", "etc", "rel"));
    fs.symlinkSync("/etc/alternatives/../nowhere", p("src", "etc", "dangling"));
    fs.symlinkSync(Buffer.from("/opt/caf\xe9", "latin1"), p("src", "latin1"));
    gnuTar(p("alt.tar"), p("src"));
    await importLayer(p("alt.tar"), p("d"));
    assert.equal(fs.readlinkSync(p("d", "lib64")), "/usr/lib64");
    assert.equal(fs.readlinkSync(p("d", "etc", "rel")), "../../x");
    assert.equal(fs.readlinkSync(p("d", "etc", "dangling")), "/etc/alternatives/../nowhere");
    assert.ok(
      fs.readlinkSync(p("d", "latin1"), { encoding: "buffer" }).equals(Buffer.from("/opt/caf\xe9", "latin1")),
    );
    // The round trip through export gives the same targets.
    await exportLayer(p("d"), fs.createWriteStream(p("again.tar")));
    await importLayer(p("again.tar"), p("d2"), {});
    assert.equal(fs.readlinkSync(p("d2", "lib64")), "/usr/lib64");
    assert.equal(fs.readlinkSync(p("d2", "etc", "rel")), "../../x");
  });

  it("a member whose own path escapes is still refused, and nothing is left half-imported", async () => {
    tree(p("src"), { a: "a", b: { c: "c" } });
    // GNU tar keeps a '..' member name with -P; the good members come first, so some are unpacked.
    fs.writeFileSync(p("evil"), "x");
    execFileSync("tar", ["-P", "-cf", p("evil.tar"), "-C", p("src"), "a", "b", `../evil`]);
    await assert.rejects(
      importLayer(p("evil.tar"), p("t")),
      usageError(/layer entry '\.\.\/evil' contains '\.\.'/),
    );
    assert.ok(!fs.existsSync(p("t")));
    fs.mkdirSync(p("empty"));
    await assert.rejects(importLayer(p("evil.tar"), p("empty")), usageError(/contains '\.\.'/));
    assert.deepEqual(fs.readdirSync(p("empty")), []);
  });

  it("zstd layers crash import: read with Node's zstd where it has one, else refused with one line", async () => {
    tree(p("src"), { f: "zstd data\n" });
    gnuTar(p("l.tar"), p("src"));
    execFileSync("zstd", ["-q", "-c", p("l.tar"), "-o", p("layer")]); // no extension: told by magic
    if (zstdDecompressor() === undefined) {
      await assert.rejects(
        importLayer(p("layer"), p("t")),
        usageError(
          /is zstd-compressed, which this Node \(v[0-9.]+\) cannot read .*zstd -dc FILE \| unionfs-ts import - DIR/,
        ),
      );
      assert.ok(!fs.existsSync(p("t")));
    } else {
      await importLayer(p("layer"), p("t"));
      assert.equal(fs.readFileSync(p("t", "f"), "utf8"), "zstd data\n");
    }
  });

  it("gzip is told by its magic bytes, not the name; a damaged stream is one line", async () => {
    tree(p("src"), { f: "gz data\n".repeat(1000) });
    gnuTar(p("l.tar"), p("src"));
    fs.writeFileSync(p("layer.bin"), execFileSync("gzip", ["-c", p("l.tar")]));
    await importLayer(p("layer.bin"), p("t"));
    assert.equal(fs.readFileSync(p("t", "f"), "utf8"), "gz data\n".repeat(1000));
    const gz = fs.readFileSync(p("layer.bin"));
    fs.writeFileSync(p("cut.gz"), gz.subarray(0, gz.length - 30));
    await assert.rejects(
      importLayer(p("cut.gz"), p("t2")),
      usageError(/'.*cut\.gz' is a damaged gzip stream/),
    );
    assert.ok(!fs.existsSync(p("t2")));
    // From a stream (a layer blob inside an image archive, a pipe): the same.
    await importLayerStream(fs.createReadStream(p("layer.bin")), p("t3"), { name: "blob" });
    assert.equal(fs.readFileSync(p("t3", "f"), "utf8"), "gz data\n".repeat(1000));
  });

  for (const [what, spec, pattern] of [
    [
      "an OCI image archive (podman save --format oci-archive)",
      {
        blobs: { sha256: { ["a".repeat(64)]: "layer blob", ["b".repeat(64)]: "config" } },
        "index.json": "{}",
        "oci-layout": "{}",
      },
      /is an OCI image archive \(oci-layout, index.json, blobs\/\), not a layer: use `unionfs-ts load`$/,
    ],
    [
      "a docker-archive (docker save)",
      { "manifest.json": "[]", repositories: "{}", ["c".repeat(64)]: { "layer.tar": "x", json: "{}" } },
      /is a docker-archive \(manifest\.json, one tar per layer\), not a layer: use `unionfs-ts load`$/,
    ],
  ] as const) {
    it(`importing ${what} as if it were a layer is refused with one line`, async () => {
      tree(p("img"), spec);
      gnuTar(p("img.tar"), p("img"));
      await assert.rejects(importLayer(p("img.tar"), p("t")), usageError(pattern));
      assert.ok(!fs.existsSync(p("t")));
    });
  }

  it("an OCI layout directory is refused too; a layer that merely holds /manifest.json is a layer", async () => {
    tree(p("layout"), { blobs: { sha256: {} }, "index.json": "{}", "oci-layout": "{}" });
    await assert.rejects(
      importLayer(p("layout"), p("t")),
      usageError(/is an OCI image layout .*use `unionfs-ts load`/),
    );
    tree(p("src"), { "manifest.json": "{}", "oci-layout": "{}", etc: { passwd: "root" } });
    gnuTar(p("l.tar"), p("src"));
    await importLayer(p("l.tar"), p("t"));
    assert.deepEqual(fs.readdirSync(p("t")).sort(), ["etc", "manifest.json", "oci-layout"]);
  });

  it("export drops extended attributes: export → import keeps capabilities, ACLs, user.* and trusted.*", async () => {
    tree(p("up"), { ping: "ping", d: { f: "f" } });
    const cap = Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    lsetxattr(p("up", "ping"), "security.capability", cap, 0);
    lsetxattr(p("up", "ping"), "user.color", Buffer.from("blue"), 0);
    lsetxattr(p("up", "d"), "trusted.note", Buffer.from([0, 0xff, 0x0a]), 0);
    execFileSync("setfacl", ["-m", "u:1234:r", p("up", "d", "f")]);
    execFileSync("setfacl", ["-d", "-m", "u:1234:rw", p("up", "d")]);
    const acl = lgetxattr(p("up", "d", "f"), "system.posix_acl_access");
    const dacl = lgetxattr(p("up", "d"), "system.posix_acl_default");
    await exportLayer(p("up"), fs.createWriteStream(p("l.tar")));
    await importLayer(p("l.tar"), p("t"));
    assert.ok(lgetxattr(p("t", "ping"), "security.capability").equals(cap));
    assert.equal(lgetxattr(p("t", "ping"), "user.color").toString(), "blue");
    assert.ok(lgetxattr(p("t", "d"), "trusted.note").equals(Buffer.from([0, 0xff, 0x0a])));
    assert.ok(lgetxattr(p("t", "d", "f"), "system.posix_acl_access").equals(acl));
    assert.ok(lgetxattr(p("t", "d"), "system.posix_acl_default").equals(dacl));
    assert.equal(fs.statSync(p("t", "d", "f")).mode & 0o777, fs.statSync(p("up", "d", "f")).mode & 0o777);
  });

  it("reads GNU tar's SCHILY.xattr records; the union's own attributes in an archive are left out with a warning", async () => {
    tree(p("src"), { d: { f: "f" } });
    lsetxattr(p("src", "d"), "trusted.overlay.opaque", Buffer.from("y"), 0);
    lsetxattr(p("src", "d", "f"), "user.k", Buffer.from("v"), 0);
    gnuTar(p("l.tar"), p("src"), "--xattrs", "--xattrs-include=*");
    const warnings: string[] = [];
    await importLayer(p("l.tar"), p("t"), { onWarning: (w) => warnings.push(w) });
    assert.equal(lgetxattr(p("t", "d", "f"), "user.k").toString(), "v");
    assert.ok(!llistxattr(p("t", "d")).includes("trusted.overlay.opaque"));
    assert.deepEqual(warnings, [
      "extended attribute trusted.overlay.opaque left out (not layer content) on 1 entry",
    ]);
  });
});
