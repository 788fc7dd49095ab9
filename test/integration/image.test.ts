/**
 * Layer tooling end to end, through the CLI and real mounts:
 *
 * - changes made through a union land in its rw branch; `diff` lists them; `export` writes the branch as
 *   an OCI layer; `import` unpacks it into a new directory; base + imported layer, mounted read-only,
 *   show exactly the view the original union showed (both import formats);
 * - `mount-overlay2` mounts a container layer of a fabricated /var/lib/docker/overlay2 tree (base image
 *   layer, a layer with overlay whiteouts and an opaque dir, an -init layer, the container layer) by its
 *   id, and the view equals what kernel overlayfs shows for the same layers mounted the way docker does;
 *   writes go to the container's diff/ in overlay format;
 * - bad input gives one line on stderr, exit 2, and nothing mounted or created.
 *
 * Every mount is taken down in afterEach, whether the test passed or not.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { list } from "tar";
import { zstdDecompressor } from "../../src/image/archive-input";
import { lsetxattr, mknod } from "../../src/sys/libc";
import { forceUnmount, isMounted, waitFor } from "../helpers/mounts";
import { diffSnapshots, snapshotTree } from "../helpers/snapshot";
import { runChild } from "../helpers/syscalls";
import { file, symlink, writeTree } from "../helpers/tmp";
import {
  CLI_PATH,
  daemonPidsFor,
  EXIT_DEADLINE_MS,
  killAndWait,
  MOUNT_DEADLINE_MS,
  newTag,
  runCli,
  useCleanup,
  type CliResult,
} from "../helpers/unionfs";

const fsp = fs.promises;
const S_IFCHR = 0o020000;

function ok(r: CliResult, what: string): void {
  assert.equal(r.status, 0, `${what} exited ${r.status ?? r.signal}: ${r.stderr}`);
}

function oneLineError(r: CliResult, pattern: RegExp): void {
  assert.equal(r.status, 2, `expected exit 2, got ${r.status ?? r.signal}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? "", /^unionfs-ts: /);
  assert.match(lines[0] ?? "", pattern);
}

async function tarNames(file: string): Promise<string[]> {
  const names: string[] = [];
  await list({ file, onReadEntry: (e) => names.push(e.path) });
  return names;
}

describe("layers: diff, export, import, mount-overlay2", function () {
  this.timeout(60_000);
  const t = useCleanup();

  it("union changes → diff → export → import: base + imported layer show the union's view", async () => {
    const work = t.tempDir("image");
    const base = path.join(work, "base");
    const upper = path.join(work, "upper");
    const mnt = path.join(work, "mnt");
    for (const d of [base, upper, mnt]) fs.mkdirSync(d);
    writeTree(base, {
      a: "a\n",
      keep: "keep\n",
      d: { x: "x\n", y: file("y\n", 0o644) },
      e: { f: "f\n", g: { h: "h\n" } },
      l: symlink("a"),
      sub: { deep: { z: "z\n" } },
    });

    const m = await t.union(`${upper}:${base}`, mnt);
    await fsp.writeFile(path.join(mnt, "a"), "changed\n");
    await fsp.writeFile(path.join(mnt, "new"), "new\n");
    await fsp.chown(path.join(mnt, "new"), 1234, 5678);
    await fsp.link(path.join(mnt, "new"), path.join(mnt, "new2"));
    await fsp.symlink("new", path.join(mnt, "s"));
    await fsp.unlink(path.join(mnt, "keep"));
    await fsp.unlink(path.join(mnt, "d", "x"));
    await fsp.chmod(path.join(mnt, "d", "y"), 0o600);
    await fsp.rm(path.join(mnt, "e"), { recursive: true });
    await fsp.mkdir(path.join(mnt, "e"), { mode: 0o750 });
    await fsp.writeFile(path.join(mnt, "e", "fresh"), "fresh\n");
    await fsp.mkdir(path.join(mnt, "sub", "deep", "n"));
    await fsp.mkdir(path.join(mnt, "ro"), { mode: 0o755 });
    await fsp.writeFile(path.join(mnt, "ro", "inside"), "i\n");
    await fsp.chmod(path.join(mnt, "ro"), 0o555);
    const view = await snapshotTree(mnt);
    await m.unmount();
    assert.ok(!isMounted(mnt));

    // diff
    const withLower = await runCli(["diff", upper, "--lower", base]);
    ok(withLower, "diff --lower");
    assert.equal(withLower.stderr, "");
    assert.deepEqual(withLower.stdout.trimEnd().split("\n"), [
      "C /a",
      "C /d",
      "D /d/x",
      "C /d/y",
      "C /e",
      "D /e/f",
      "A /e/fresh",
      "D /e/g",
      "D /keep",
      "A /new",
      "A /new2",
      "A /ro",
      "A /ro/inside",
      "A /s",
      "C /sub",
      "C /sub/deep",
      "A /sub/deep/n",
    ]);
    const plain = await runCli(["diff", upper]);
    ok(plain, "diff");
    assert.equal(plain.stdout, withLower.stdout.replace(/^D \/e\/[fg]\n/gm, "").replace(/^C /gm, "A "));

    // export, to a file and to stdout: the same bytes
    const tarFile = path.join(work, "layer.tar");
    const exported = await runCli(["export", "-o", tarFile, upper]);
    ok(exported, "export -o");
    assert.equal(exported.stderr, "");
    const names = await tarNames(tarFile);
    assert.ok(names.includes("e/.wh..wh..opq") && names.includes(".wh.keep") && names.includes("d/.wh.x"));
    assert.ok(names.indexOf("e/.wh..wh..opq") === names.indexOf("e/") + 1, names.join(" "));
    assert.ok(!names.some((n) => n.startsWith(".wh..wh.unionfs")), names.join(" "));
    assert.ok(fs.existsSync(path.join(upper, ".wh..wh.unionfs")));
    const viaStdout = path.join(work, "stdout.tar");
    const sh = await runChild("sh", [
      "-c",
      'exec "$0" "$1" export "$2" > "$3"',
      process.execPath,
      CLI_PATH,
      upper,
      viaStdout,
    ]);
    assert.equal(sh.status, 0, sh.stderr);
    assert.ok(fs.readFileSync(viaStdout).equals(fs.readFileSync(tarFile)));

    // import (both formats), mount read-only over the base, compare with the original view
    for (const format of ["aufs", "overlay"]) {
      const imported = path.join(work, `imported-${format}`);
      const r = await runCli(["import", "--format", format, tarFile, imported]);
      ok(r, `import --format ${format}`);
      assert.equal(r.stderr, "");
      const again = await runCli(["diff", imported, "--lower", base]);
      assert.equal(again.stdout, withLower.stdout, `diff of the ${format} import`);
      const mnt2 = path.join(work, `mnt-${format}`);
      fs.mkdirSync(mnt2);
      const m2 = await t.union(`${imported}=ro:${base}=ro`, mnt2);
      assert.deepEqual(diffSnapshots(view, await snapshotTree(mnt2)), [], `view over the ${format} import`);
      await m2.unmount();
    }
  });

  it("bad input: one line on stderr, exit 2, nothing created", async () => {
    const work = t.tempDir("image-bad");
    fs.writeFileSync(path.join(work, "not.tar"), "definitely not a tar archive\n".repeat(30));
    oneLineError(await runCli(["diff", path.join(work, "nope")]), /layer '.*nope' does not exist/);
    oneLineError(await runCli(["diff", work, "--lower", path.join(work, "nope")]), /does not exist/);
    oneLineError(
      await runCli(["export", "-o", path.join(work, "o.tar"), path.join(work, "nope")]),
      /does not exist/,
    );
    assert.ok(!fs.existsSync(path.join(work, "o.tar")));
    oneLineError(await runCli(["export", "-o", path.join(work, "inside.tar"), work]), /inside the layer/);
    oneLineError(
      await runCli(["import", path.join(work, "not.tar"), path.join(work, "t")]),
      /is not a tar archive/,
    );
    oneLineError(
      await runCli(["import", path.join(work, "nope.tar"), path.join(work, "t")]),
      /does not exist/,
    );
    oneLineError(
      await runCli(["import", "--format", "zfs", path.join(work, "not.tar"), path.join(work, "t")]),
      /--format/,
    );
    assert.ok(!fs.existsSync(path.join(work, "t")));
    const mnt = path.join(work, "mnt");
    fs.mkdirSync(mnt);
    t.guardMountpoint(mnt);
    oneLineError(await runCli(["mount-overlay2", work, "nosuch", mnt]), /no layer 'nosuch'/);
    assert.ok(!isMounted(mnt));
  });

  /** Runs the CLI through `sh -c SCRIPT` with "$CLI" set, for pipes and redirections. */
  function shCli(script: string, ...args: string[]): Promise<CliResult> {
    return runChild("sh", ["-c", `CLI="$0 $1"; ${script}`, process.execPath, CLI_PATH, ...args]).then(
      (r) => ({
        ...r,
        signal: null,
      }),
    ) as Promise<CliResult>;
  }

  it("import cannot read a pipe: '-' and /dev/stdin read the archive from standard input, gzip told by magic", async () => {
    const work = t.tempDir("image-pipe");
    const src = path.join(work, "src");
    fs.mkdirSync(path.join(src, "usr", "lib64"), { recursive: true });
    fs.writeFileSync(path.join(src, "usr", "lib64", "libx.so"), "elf\n");
    fs.symlinkSync("/usr/lib64", path.join(src, "lib64"));
    const tarFile = path.join(work, "layer.tar");
    const made = await runChild("tar", ["-cf", tarFile, "-C", src, "."]);
    assert.equal(made.status, 0, made.stderr);
    const cases: Array<[string, string]> = [
      ['gzip -c "$2" | $CLI import - "$3"', "gz-dash"],
      ['cat "$2" | $CLI import /dev/stdin "$3"', "plain-devstdin"],
      ['$CLI import - "$3" < "$2"', "redirect"],
    ];
    for (const [script, name] of cases) {
      const dir = path.join(work, name);
      const r = await shCli(script, tarFile, dir);
      assert.equal(r.status, 0, `${script}: ${r.stderr}`);
      assert.equal(r.stderr, "", script);
      assert.equal(fs.readlinkSync(path.join(dir, "lib64")), "/usr/lib64", script);
      assert.equal(fs.readFileSync(path.join(dir, "usr", "lib64", "libx.so"), "utf8"), "elf\n", script);
    }
    // Not a tar on the pipe: one line, nothing created.
    const bad = await shCli('echo nonsense | $CLI import - "$2"', path.join(work, "bad"));
    oneLineError(bad, /standard input is not a tar archive/);
    assert.ok(!fs.existsSync(path.join(work, "bad")));
  });

  it("zstd layers crash import: read where Node can, else one line (no library source on stderr)", async () => {
    const work = t.tempDir("image-zstd");
    fs.mkdirSync(path.join(work, "src"));
    fs.writeFileSync(path.join(work, "src", "f"), "zstd\n");
    const tarFile = path.join(work, "layer.tar");
    assert.equal((await runChild("tar", ["-cf", tarFile, "-C", path.join(work, "src"), "."])).status, 0);
    assert.equal((await runChild("zstd", ["-q", tarFile, "-o", `${tarFile}.zst`])).status, 0);
    const r = await runCli(["import", `${tarFile}.zst`, path.join(work, "t")]);
    if (zstdDecompressor() === undefined) {
      oneLineError(r, /is zstd-compressed, which this Node \(v[0-9.]+\) cannot read/);
      assert.ok(r.stderr.length < 300, r.stderr);
      assert.ok(!fs.existsSync(path.join(work, "t")));
    } else {
      ok(r, "import of a zstd layer");
      assert.equal(fs.readFileSync(path.join(work, "t", "f"), "utf8"), "zstd\n");
    }
  });

  it("export drops extended attributes: setcap cap_net_raw+ep survives export → import (getcap)", async () => {
    const work = t.tempDir("image-caps");
    const up = path.join(work, "up");
    fs.mkdirSync(up);
    fs.copyFileSync("/bin/busybox", path.join(up, "ping"));
    assert.equal((await runChild("setcap", ["cap_net_raw+ep", path.join(up, "ping")])).status, 0);
    assert.equal((await runChild("setfacl", ["-m", "u:1234:rx", path.join(up, "ping")])).status, 0);
    const tarFile = path.join(work, "layer.tar");
    ok(await runCli(["export", "-o", tarFile, up]), "export");
    const r = await shCli('$CLI import - "$3" < "$2"', tarFile, path.join(work, "t"));
    assert.equal(r.status, 0, r.stderr);
    const cap = await runChild("getcap", [path.join(work, "t", "ping")]);
    assert.match(cap.stdout, /ping cap_net_raw=ep/);
    const acl = await runChild("getfacl", ["-c", path.join(work, "t", "ping")]);
    assert.match(acl.stdout, /^user:1234:r-x$/m);
  });

  it("importing a whole image archive as if it were a layer: one line that says what it is and to use load", async () => {
    const work = t.tempDir("image-archive");
    const layout = path.join(work, "layout");
    fs.mkdirSync(path.join(layout, "blobs", "sha256"), { recursive: true });
    fs.writeFileSync(path.join(layout, "blobs", "sha256", "e".repeat(64)), "blob");
    fs.writeFileSync(path.join(layout, "index.json"), "{}");
    fs.writeFileSync(path.join(layout, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    const archive = path.join(work, "image.tar");
    assert.equal((await runChild("tar", ["-cf", archive, "-C", layout, "."])).status, 0);
    oneLineError(
      await runCli(["import", archive, path.join(work, "t")]),
      /OCI image archive.*use `unionfs-ts load`/,
    );
    oneLineError(
      await runCli(["import", layout, path.join(work, "t")]),
      /OCI image layout.*use `unionfs-ts load`/,
    );
    assert.ok(!fs.existsSync(path.join(work, "t")));
  });

  it("progress: a line on a terminal's stderr, none off a terminal or with --quiet", async () => {
    const work = t.tempDir("image-progress");
    fs.mkdirSync(path.join(work, "up"));
    fs.writeFileSync(path.join(work, "up", "f"), Buffer.alloc(1 << 20, 7));
    const tarFile = path.join(work, "l.tar");
    const onTty = async (args: string): Promise<string> => {
      const r = await runChild("script", ["-qec", `${process.execPath} ${CLI_PATH} ${args}`, "/dev/null"]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      return r.stdout;
    };
    assert.match(await onTty(`export -o ${tarFile} ${path.join(work, "up")}`), /up: 1\.0 MiB, 1 entry in/);
    assert.match(await onTty(`import ${tarFile} ${path.join(work, "t1")}`), /l\.tar: .*, 1 entry in/);
    assert.equal(await onTty(`import -q ${tarFile} ${path.join(work, "t2")}`), "");
    const plain = await runCli(["import", tarFile, path.join(work, "t3")]);
    ok(plain, "import off a terminal");
    assert.equal(plain.stderr, "");
  });

  it("mount-overlay2: a container layer of an overlay2 tree, by id, as kernel overlayfs shows it", async () => {
    const root = t.tempDir("overlay2");
    const layer = (id: string, short: string, lowers: string[] | undefined, work: boolean): string => {
      const diff = path.join(root, id, "diff");
      fs.mkdirSync(diff, { recursive: true });
      fs.writeFileSync(path.join(root, id, "link"), short);
      fs.mkdirSync(path.join(root, "l"), { recursive: true });
      fs.symlinkSync(`../${id}/diff`, path.join(root, "l", short));
      if (lowers) fs.writeFileSync(path.join(root, id, "lower"), lowers.map((s) => `l/${s}`).join(":"));
      if (work) fs.mkdirSync(path.join(root, id, "work"));
      return diff;
    };
    const baseId = "3f1c0a9e5b7d";
    const midId = "8a2b4c6d8e0f";
    const ctrId = "c0ffee123456";
    const base = layer(baseId, "AAAAAAAA", undefined, false);
    const mid = layer(midId, "BBBBBBBB", ["AAAAAAAA"], true);
    const init = layer(`${ctrId}-init`, "CCCCCCCC", ["BBBBBBBB", "AAAAAAAA"], true);
    const ctr = layer(ctrId, "DDDDDDDD", ["CCCCCCCC", "BBBBBBBB", "AAAAAAAA"], true);
    writeTree(base, {
      etc: { "os-release": "ID=test\n", gone: "gone\n", passwd: "root:x:0:0::/root:/bin/sh\n" },
      bin: { sh: file("#!sh\n", 0o755) },
      opt: { old: { file: "old\n" } },
    });
    writeTree(mid, { etc: { app: "app v1\n" }, opt: { new: "new\n" } });
    mknod(path.join(mid, "etc", "gone"), S_IFCHR, 0);
    lsetxattr(path.join(mid, "opt"), "trusted.overlay.opaque", Buffer.from("y"), 0);
    writeTree(init, { etc: { hosts: "127.0.0.1 localhost\n", "resolv.conf": "" } });
    writeTree(ctr, { etc: { app: "app v2\n" } });

    // The reference: kernel overlayfs over the same layers, mounted the way docker mounts them.
    const refMnt = t.tempDir("overlay2-ref");
    const ref = t.overlay({
      lower: ["CCCCCCCC", "BBBBBBBB", "AAAAAAAA"].map((s) => path.join(root, "l", s)),
      upper: ctr,
      work: path.join(root, ctrId, "work"),
      mnt: refMnt,
    });
    const expected = await snapshotTree(refMnt);
    ref.unmount();
    assert.ok(expected.some((e) => e.path === "etc/hosts") && !expected.some((e) => e.path === "etc/gone"));
    assert.ok(!expected.some((e) => e.path === "opt/old"));

    const mnt = t.tempDir("overlay2-mnt");
    const tag = newTag();
    t.guardMountpoint(mnt, tag);
    const r = await runCli(["mount-overlay2", root, ctrId, mnt], { tag });
    ok(r, "mount-overlay2");
    await waitFor(() => isMounted(mnt), MOUNT_DEADLINE_MS, `the overlay2 mount at ${mnt}`);
    assert.deepEqual(diffSnapshots(expected, await snapshotTree(mnt)), []);

    // Writes land in the container's diff/, deletions as overlay whiteouts; lower layers stay as they were.
    const notCtr = (rel: string): boolean => rel === ctrId || rel.startsWith(`${ctrId}/`);
    const before = await snapshotTree(root, { exclude: notCtr });
    await fsp.writeFile(path.join(mnt, "etc", "new-file"), "hello\n");
    await fsp.unlink(path.join(mnt, "etc", "os-release"));
    await fsp.rm(path.join(mnt, "opt"), { recursive: true });
    await fsp.mkdir(path.join(mnt, "opt"));
    forceUnmount(mnt);
    try {
      await waitFor(() => daemonPidsFor(tag, mnt).length === 0, EXIT_DEADLINE_MS, "the daemon to exit");
    } catch {
      await killAndWait(daemonPidsFor(tag, mnt));
    }
    const wh = fs.lstatSync(path.join(ctr, "etc", "os-release"));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, "an overlay-format whiteout in the container's diff/");
    assert.equal(fs.readFileSync(path.join(ctr, "etc", "new-file"), "utf8"), "hello\n");
    assert.ok(fs.existsSync(path.join(root, ctrId, "work", "unionfs-ts")));
    assert.deepEqual(diffSnapshots(before, await snapshotTree(root, { exclude: notCtr })), []);

    const changes = await runCli(["diff", ctr, "--lower", [init, mid, base].join(":")]);
    ok(changes, "diff of the container layer");
    assert.deepEqual(changes.stdout.trimEnd().split("\n"), [
      "C /etc",
      "C /etc/app",
      "A /etc/new-file",
      "D /etc/os-release",
      "C /opt",
      "D /opt/new",
    ]);

    // The same tree through kernel overlayfs again: it agrees with what unionfs-ts wrote.
    const after = t.overlay({
      lower: ["CCCCCCCC", "BBBBBBBB", "AAAAAAAA"].map((s) => path.join(root, "l", s)),
      upper: ctr,
      work: path.join(root, ctrId, "work"),
      mnt: refMnt,
    });
    const kernelAfter = await snapshotTree(refMnt);
    after.unmount();
    assert.ok(kernelAfter.some((e) => e.path === "etc/new-file"));
    assert.ok(!kernelAfter.some((e) => e.path === "etc/os-release" || e.path.startsWith("opt/")));
  });

  it("mount-overlay2 of an image layer without work/ is read-only", async () => {
    const root = t.tempDir("overlay2-ro");
    fs.mkdirSync(path.join(root, "base", "diff"), { recursive: true });
    fs.mkdirSync(path.join(root, "l"));
    fs.symlinkSync("../base/diff", path.join(root, "l", "AAAA"));
    fs.writeFileSync(path.join(root, "base", "link"), "AAAA");
    writeTree(path.join(root, "base", "diff"), { f: "f\n" });
    const mnt = t.tempDir("overlay2-ro-mnt");
    const tag = newTag();
    t.guardMountpoint(mnt, tag);
    ok(await runCli(["mount-overlay2", root, "base", mnt], { tag }), "mount-overlay2");
    await waitFor(() => isMounted(mnt), MOUNT_DEADLINE_MS, `the overlay2 mount at ${mnt}`);
    assert.equal(await fsp.readFile(path.join(mnt, "f"), "utf8"), "f\n");
    await assert.rejects(fsp.writeFile(path.join(mnt, "g"), "g"), { code: "EROFS" });
  });
});
