/**
 * The kernel transport mounted for real, serving the passthrough test double from a child process.
 * Every operation goes through the mount and is checked against the backing directory.
 */
import { strict as assert } from "node:assert";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { isMounted, run, waitFor } from "../../helpers/mounts";
import { makeTempDir, removeTree } from "../../helpers/tmp";
import { startServer, stopServer } from "./server";
import type { Server } from "./server";

const sha256 = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("kernel transport over /dev/fuse (passthrough)", function () {
  this.timeout(20_000);
  let src = "";
  let mnt = "";
  let server: Server | undefined;
  const m = (p: string): string => path.join(mnt, p);
  const s = (p: string): string => path.join(src, p);

  before(async () => {
    src = makeTempDir("fuse-src");
    mnt = makeTempDir("fuse-mnt");
    fs.writeFileSync(s("hello.txt"), "hello\n");
    server = await startServer(src, mnt);
  });

  after(async () => {
    if (server) await stopServer(server);
    if (mnt) removeTree(mnt);
    if (src) removeTree(src);
  });

  it("lists the root and reads a file", () => {
    assert.deepEqual(fs.readdirSync(mnt), ["hello.txt"]);
    assert.equal(fs.readFileSync(m("hello.txt"), "utf8"), "hello\n");
  });

  it("reports attributes exactly, nanosecond times included", () => {
    fs.utimesSync(s("hello.txt"), 1, 2); // start from something else
    const r = run("touch", ["-m", "-d", "2001-02-03 04:05:06.123456789Z", m("hello.txt")]);
    assert.equal(r.status, 0, r.stderr);
    const viaMount = fs.statSync(m("hello.txt"), { bigint: true });
    const onDisk = fs.statSync(s("hello.txt"), { bigint: true });
    assert.equal(viaMount.mtimeNs, 981173106123456789n);
    assert.equal(onDisk.mtimeNs, 981173106123456789n);
    for (const k of ["ino", "size", "mode", "nlink", "uid", "gid", "blocks", "atimeNs", "ctimeNs"] as const) {
      assert.equal(viaMount[k], onDisk[k], k);
    }
  });

  it("writes, appends and truncates", () => {
    fs.writeFileSync(m("w.txt"), "abc");
    fs.appendFileSync(m("w.txt"), "def");
    assert.equal(fs.readFileSync(s("w.txt"), "utf8"), "abcdef");
    fs.truncateSync(m("w.txt"), 2);
    assert.equal(fs.readFileSync(m("w.txt"), "utf8"), "ab");
    const fd = fs.openSync(m("w.txt"), "r+");
    try {
      fs.ftruncateSync(fd, 5);
      fs.writeSync(fd, "Z", 4);
    } finally {
      fs.closeSync(fd);
    }
    assert.deepEqual(fs.readFileSync(s("w.txt")), Buffer.from("ab\0\0Z"));
    fs.writeFileSync(m("w.txt"), "x"); // O_TRUNC on open
    assert.equal(fs.readFileSync(m("w.txt"), "utf8"), "x");
  });

  it("creates with the caller's umask applied exactly once", () => {
    const old = process.umask(0o027);
    try {
      fs.mkdirSync(m("dir"), 0o777);
      fs.writeFileSync(m("dir/f"), "", { mode: 0o666 });
    } finally {
      process.umask(old);
    }
    assert.equal(fs.statSync(s("dir")).mode & 0o7777, 0o750);
    assert.equal(fs.statSync(s("dir/f")).mode & 0o7777, 0o640);
    assert.throws(() => fs.rmdirSync(m("dir")), { code: "ENOTEMPTY" });
    fs.unlinkSync(m("dir/f"));
    fs.rmdirSync(m("dir"));
    assert.equal(fs.existsSync(s("dir")), false);
    assert.throws(() => fs.statSync(m("dir")), { code: "ENOENT" });
  });

  it("creates objects owned by the calling user and lets the kernel check permissions", function () {
    if (run("sh", ["-c", "command -v setpriv"]).status !== 0) this.skip();
    fs.mkdirSync(m("pub"));
    fs.chmodSync(m("pub"), 0o777);
    const as1000 = ["--reuid=1000", "--regid=1000", "--clear-groups"];
    const ok = run("setpriv", [...as1000, "touch", m("pub/mine")]);
    assert.equal(ok.status, 0, ok.stderr);
    const st = fs.statSync(s("pub/mine"));
    assert.deepEqual([st.uid, st.gid], [1000, 1000]);
    const denied = run("setpriv", [...as1000, "touch", m("not-mine")]);
    assert.notEqual(denied.status, 0);
    assert.match(denied.stderr, /Permission denied/);
  });

  it("renames files over others and moves directories with their contents", () => {
    fs.writeFileSync(m("r1"), "one");
    fs.writeFileSync(m("r2"), "two");
    fs.renameSync(m("r1"), m("r2"));
    assert.equal(fs.readFileSync(m("r2"), "utf8"), "one");
    assert.equal(fs.existsSync(m("r1")), false);
    fs.mkdirSync(m("tree/sub"), { recursive: true });
    fs.writeFileSync(m("tree/sub/leaf"), "leaf");
    assert.equal(fs.readFileSync(m("tree/sub/leaf"), "utf8"), "leaf"); // nodes now known to the table
    fs.renameSync(m("tree"), m("moved"));
    assert.equal(fs.readFileSync(m("moved/sub/leaf"), "utf8"), "leaf");
    fs.writeFileSync(m("moved/sub/leaf2"), "leaf2");
    assert.equal(fs.readFileSync(s("moved/sub/leaf2"), "utf8"), "leaf2");
    assert.equal(fs.existsSync(m("tree")), false);
  });

  it("keeps serving a file that was removed while open", () => {
    const fd = fs.openSync(m("gone"), "w+");
    try {
      fs.writeSync(fd, "still here");
      fs.unlinkSync(m("gone"));
      assert.equal(fs.existsSync(s("gone")), false);
      assert.equal(fs.fstatSync(fd).size, 10);
      fs.fchmodSync(fd, 0o600);
      assert.equal(fs.fstatSync(fd).mode & 0o777, 0o600);
      fs.ftruncateSync(fd, 5);
      const buf = Buffer.alloc(20);
      assert.equal(buf.toString("utf8", 0, fs.readSync(fd, buf, 0, 20, 0)), "still");
    } finally {
      fs.closeSync(fd);
    }
  });

  it("makes and reads symlinks", () => {
    fs.symlinkSync("some/where", m("link"));
    assert.equal(fs.readlinkSync(m("link")), "some/where");
    assert.equal(fs.readlinkSync(s("link")), "some/where");
    assert.ok(fs.lstatSync(m("link")).isSymbolicLink());
  });

  it("makes hard links", () => {
    fs.writeFileSync(m("orig"), "shared");
    fs.linkSync(m("orig"), m("alias"));
    const st = fs.statSync(m("alias"));
    assert.equal(st.nlink, 2);
    assert.equal(st.ino, fs.statSync(s("orig")).ino);
    assert.equal(fs.readFileSync(m("alias"), "utf8"), "shared");
  });

  it("changes modes", () => {
    fs.writeFileSync(m("ch"), "");
    fs.chmodSync(m("ch"), 0o604);
    assert.equal(fs.statSync(s("ch")).mode & 0o7777, 0o604);
    assert.equal(fs.statSync(m("ch")).mode & 0o7777, 0o604);
  });

  it("sets, gets, lists and removes extended attributes", function () {
    if (run("sh", ["-c", "command -v getfattr && command -v setfattr"]).status !== 0) this.skip();
    fs.writeFileSync(m("x"), "");
    assert.equal(run("setfattr", ["-n", "user.color", "-v", "blue", m("x")]).status, 0);
    assert.equal(run("setfattr", ["-n", "user.size", "-v", "large", m("x")]).status, 0);
    const got = run("getfattr", ["--only-values", "-n", "user.color", m("x")]);
    assert.equal(got.stdout, "blue");
    const dump = run("getfattr", ["-d", m("x")]).stdout;
    assert.match(dump, /user\.color="blue"/);
    assert.match(dump, /user\.size="large"/);
    assert.equal(run("setfattr", ["-x", "user.color", m("x")]).status, 0);
    const missing = run("getfattr", ["-n", "user.color", m("x")]);
    assert.match(missing.stderr, /No such attribute/);
    assert.match(run("getfattr", ["-d", s("x")]).stdout, /user\.size="large"/);
  });

  it("keeps non-UTF-8 names byte for byte", () => {
    const name = Buffer.from([0x62, 0xff, 0xfe, 0x80, 0x2e, 0x74]);
    const slash = Buffer.from("/");
    fs.writeFileSync(Buffer.concat([Buffer.from(mnt), slash, name]), "bytes");
    const onDisk = fs.readdirSync(src, { encoding: "buffer" });
    assert.ok(
      onDisk.some((n) => n.equals(name)),
      "raw name on disk",
    );
    const viaMount = fs.readdirSync(mnt, { encoding: "buffer" });
    assert.ok(
      viaMount.some((n) => n.equals(name)),
      "raw name through the mount",
    );
    assert.equal(fs.readFileSync(Buffer.concat([Buffer.from(src), slash, name]), "utf8"), "bytes");
  });

  it("copies a 3 MiB file in and reads it back intact", () => {
    const data = randomBytes(3 * 1024 * 1024 + 123);
    fs.writeFileSync(s("big.src"), data);
    const cp = run("cp", [s("big.src"), m("big")]);
    assert.equal(cp.status, 0, cp.stderr);
    assert.equal(sha256(fs.readFileSync(m("big"))), sha256(data));
    assert.equal(sha256(fs.readFileSync(s("big"))), sha256(data));
    fs.writeFileSync(m("big2"), data);
    assert.equal(sha256(fs.readFileSync(s("big2"))), sha256(data));
  });

  it("lists a directory of 5000 entries completely, without duplicates", () => {
    fs.mkdirSync(s("many"));
    const want: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const name = `entry-${i}-${"x".repeat(i % 40)}`;
      want.push(name);
      fs.writeFileSync(s(`many/${name}`), "");
    }
    for (let round = 0; round < 2; round++) {
      const got = fs.readdirSync(m("many"));
      assert.equal(got.length, 5000);
      assert.equal(new Set(got).size, 5000);
      assert.deepEqual([...got].sort(), [...want].sort());
    }
    const ls = run("ls", ["-la", m("many")]);
    assert.equal(ls.status, 0, ls.stderr);
    assert.equal(ls.stdout.trim().split("\n").length, 5000 + 3); // total, ., ..
  });

  it("reports statfs of the backing filesystem", () => {
    const a = fs.statfsSync(mnt);
    const b = fs.statfsSync(src);
    assert.equal(a.bsize, b.bsize);
    assert.equal(a.blocks, b.blocks);
    assert.equal(a.files, b.files);
  });

  it("answers errors with the right errno", () => {
    assert.throws(() => fs.readFileSync(m("nope")), { code: "ENOENT" });
    assert.throws(() => fs.mkdirSync(m("hello.txt")), { code: "EEXIST" });
    assert.throws(() => fs.readdirSync(m("hello.txt")), { code: "ENOTDIR" });
    assert.throws(() => fs.rmdirSync(m("hello.txt")), { code: "ENOTDIR" });
  });
});

describe("kernel transport: ending a mount", function () {
  this.timeout(20_000);
  let src = "";
  let mnt = "";
  let server: Server | undefined;
  const start = async (env: Record<string, string> = {}): Promise<Server> => {
    server = await startServer(src, mnt, env);
    return server;
  };
  const exitOf = async (sv: Server): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    await waitFor(() => sv.exited, 5_000, "the server to exit");
    return sv.exit;
  };

  beforeEach(() => {
    src = makeTempDir("fuse-src");
    mnt = makeTempDir("fuse-mnt");
    fs.writeFileSync(path.join(src, "f"), "f");
  });

  afterEach(async () => {
    if (server) await stopServer(server);
    server = undefined;
    removeTree(mnt);
    removeTree(src);
  });

  it("umount makes the server exit by itself with code 0", async () => {
    const sv = await start();
    assert.equal(fs.readFileSync(path.join(mnt, "f"), "utf8"), "f");
    const r = run("umount", [mnt]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(await exitOf(sv), { code: 0, signal: null });
    assert.equal(isMounted(mnt), false);
  });

  it("unmount() detaches a busy mount and finishes once the last file is closed", async () => {
    const sv = await start();
    const fd = fs.openSync(path.join(mnt, "f"), "r");
    try {
      sv.child.kill("SIGTERM"); // the fixture calls MountedFs.unmount()
      await waitFor(() => !isMounted(mnt), 5_000, "the mount to be detached");
      assert.equal(sv.exited, false, "still serving the open file");
      assert.equal(fs.readFileSync(fd, "utf8"), "f");
    } finally {
      fs.closeSync(fd);
    }
    assert.deepEqual(await exitOf(sv), { code: 0, signal: null });
  });

  it("a killed server leaves a mount that fails fast (ENOTCONN) and teardown removes it", async () => {
    const sv = await start();
    sv.child.kill("SIGKILL");
    await exitOf(sv);
    const st = run("stat", [path.join(mnt, "f")], 5_000);
    assert.notEqual(st.status, 0);
    assert.equal(st.signal, null, "stat must not hang");
    assert.match(st.stderr, /not connected/i);
    assert.equal(isMounted(mnt), true);
  });

  it("an uncaught exception in the serving process detaches the mount instead of hanging", async () => {
    const sv = await start();
    sv.child.kill("SIGUSR2");
    assert.equal((await exitOf(sv)).code, 1);
    assert.equal(isMounted(mnt), false);
    assert.match(sv.stderr, /injected crash/);
    assert.match(sv.stderr, /aborting them/);
  });

  it("a dying serving thread fails the pending request and takes the mount down", async () => {
    const sv = await start({ FIXTURE_FACTORY: "createCrashy" });
    const st = run("stat", [path.join(mnt, "die-now")], 5_000);
    assert.equal(st.signal, null, "stat must not hang");
    assert.notEqual(st.status, 0);
    assert.equal((await exitOf(sv)).code, 1);
    assert.equal(isMounted(mnt), false);
  });

  it("a filesystem that cannot be built mounts nothing", async () => {
    await assert.rejects(start({ FIXTURE_FACTORY: "createBroken" }), /broken on purpose/);
    assert.equal(isMounted(mnt), false);
  });

  it("a failing mount(8) rejects with its error output on one line", async () => {
    const bin = makeTempDir("fakebin");
    try {
      fs.writeFileSync(
        path.join(bin, "mount"),
        "#!/bin/sh\necho 'mount: fake failure,' >&2\necho 'second line.' >&2\nexit 32\n",
        { mode: 0o755 },
      );
      await assert.rejects(
        start({ PATH: `${bin}:${process.env.PATH ?? ""}`, UNIONFS_TS_MOUNT8: "1" }),
        /serve-fixture: mount: fake failure,; second line\.$/,
      );
      assert.equal(isMounted(mnt), false);
    } finally {
      removeTree(bin);
    }
  });
});
