/**
 * fuse-native 2.2.6's known defects, each handled or pinned through a real mount (README "Transports"):
 * utimens, millisecond times, 32-bit inode numbers, the per-op timeout, errno mapping, renameat2 flags,
 * non-UTF-8 names, dead mounts, open-unlinked files, who may use the mount, and an unloadable binding.
 * Where the binding cannot do something the test pins what the user gets and prints a note.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { foldIno } from "../../../src/fuse/native/encode";
import { isMounted, waitFor } from "../../helpers/mounts";
import { py } from "../../helpers/syscalls";
import { writeTree } from "../../helpers/tmp";
import { EXIT_DEADLINE_MS, killAndWait, runCli, useCleanup } from "../../helpers/unionfs";
import { INO_TAG, SLOW_MS } from "./fake-cores";
import { NATIVE_ARGS, mountNative, note, requireNative, sh, startFixture } from "./native";

interface St {
  ino: string;
  mode: number;
  uid: number;
  atime: string;
  mtime: string;
}

const ms = (ns: bigint): bigint => (ns / 1_000_000n) * 1_000_000n;

describe("fuse-native transport: the binding's defects, handled or pinned", function () {
  this.timeout(60_000);
  const t = useCleanup();
  before(function () {
    requireNative(this);
  });

  function tree(): { A: string; B: string; C: string; root: string } {
    const root = t.tempDir("native-defects");
    const [A, B, C] = ["A", "B", "C"].map((n) => path.join(root, n)) as [string, string, string];
    writeTree(root, { A: { a: "a\n" }, B: { b: "b from B\n", d: { f: "x" } }, C: {} });
    return { A, B, C, root };
  }

  async function mounted(): Promise<{ A: string; B: string; C: string; root: string }> {
    const d = tree();
    await mountNative(t, `${d.A}:${d.B}`, d.C);
    return d;
  }

  describe("times", () => {
    it("handled: utimens sets both times (the real mtime is read back from the binding's locals)", async () => {
      const { C } = await mounted();
      const A_NS = 1_600_000_000_123_456_789n;
      const M_NS = 1_500_000_000_987_654_321n;
      const r = await py<{ r: string; st: St }>(
        `out["r"] = attempt(utimensat, A[0], int(A[1]), int(A[2])); out["st"] = st(A[0])`,
        [path.join(C, "a"), String(A_NS), String(M_NS)],
      );
      assert.equal(r.r, "ok");
      assert.equal(BigInt(r.st.atime), ms(A_NS), "atime (whole ms)");
      assert.equal(BigInt(r.st.mtime), ms(M_NS), "mtime is the mtime asked for, not the atime");
    });

    it("touch -d sets both times to the given time, cut to milliseconds", async () => {
      const { C } = await mounted();
      const r = await sh(`touch -d @1609556645.678901234 ${JSON.stringify(path.join(C, "a"))}`);
      assert.equal(r.status, 0, r.stderr);
      const s = await py<{ st: St }>(`out["st"] = st(A[0])`, [path.join(C, "a")]);
      assert.equal(s.st.mtime, "1609556645678000000");
      assert.equal(s.st.atime, "1609556645678000000");
    });

    it("pinned: touch -m -d / touch -a -d succeed but change nothing (libfuse 2 drops a one-time setattr)", async () => {
      const { C } = await mounted();
      const f = path.join(C, "b");
      await sh(`touch -d @1400000000 ${JSON.stringify(f)}`);
      const before = await py<{ st: St }>(`out["st"] = st(A[0])`, [f]);
      const r = await sh(
        `touch -m -d @1500000000 ${JSON.stringify(f)} && touch -a -d @1500000000 ${JSON.stringify(f)}`,
      );
      assert.equal(r.status, 0, r.stderr);
      const after = await py<{ st: St }>(`out["st"] = st(A[0])`, [f]);
      assert.equal(after.st.mtime, before.st.mtime);
      assert.equal(after.st.atime, before.st.atime);
      assert.equal(after.st.mtime, "1400000000000000000");
      note("touch -m/-a (utimensat with UTIME_OMIT for one time) is silently ignored by libfuse 2");
    });

    it("pinned: nanoseconds on disk are shown as whole milliseconds", async () => {
      const d = tree();
      fs.utimesSync(path.join(d.B, "b"), 1, 1);
      await py(`utimensat(A[0], 1500000000123456789, 1500000000123456789)`, [path.join(d.B, "b")]);
      await mountNative(t, `${d.A}:${d.B}`, d.C);
      const s = await py<{ st: St }>(`out["st"] = st(A[0])`, [path.join(d.C, "b")]);
      assert.equal(s.st.mtime, "1500000000123000000");
    });
  });

  describe("inode numbers", () => {
    it("st_ino comes from the core (use_ino), not from libfuse's node ids; so does d_ino", async () => {
      const { B, C } = await mounted();
      const r = await py<{ lower: string; st: St; d: Record<string, number> }>(
        `out["lower"] = st(A[0])["ino"]; out["st"] = st(A[1])
out["d"] = {e.name: e.inode() for e in os.scandir(A[2])}`,
        [path.join(B, "b"), path.join(C, "b"), C],
      );
      assert.equal(r.st.ino, r.lower);
      // the core's listing does not stat its entries: d_ino is "unknown", as in the kernel transport's READDIR
      assert.equal(r.d["b"], 0xffff_ffff);
    });

    it("pinned: 64-bit numbers are folded to 32 bits (low XOR high), so a layer tag still tells files apart", async () => {
      const d = tree();
      const fx = await startFixture(t, "hugeInodes", d.A, d.B, d.C);
      const r = await py<{ lower: string; st: St; d: Record<string, number> }>(
        `out["lower"] = st(A[0])["ino"]; out["st"] = st(A[1])
out["d"] = {e.name: e.inode() for e in os.scandir(A[2])}`,
        [path.join(d.B, "b"), path.join(fx.mnt, "b"), fx.mnt],
      );
      const want = foldIno(BigInt(r.lower) ^ INO_TAG);
      assert.notEqual(String(want), r.lower);
      assert.equal(r.st.ino, String(want));
      assert.equal(r.d["b"], 0xffff_ffff, "unknown stays unknown");
    });
  });

  it("pinned: hard links are one kernel inode per name: the other name catches up within attr_timeout", async () => {
    const { B, C } = await mounted();
    const f = path.join(C, "b");
    const g = path.join(C, "g");
    const fsp = fs.promises;
    assert.equal((await fsp.stat(f)).nlink, 1); // cached by the kernel for this name
    await fsp.link(f, g);
    await fsp.appendFile(g, "more\n");
    assert.equal((await fsp.stat(g)).nlink, 2);
    // the name that was not used may show the old nlink and size for up to 1 s (libfuse 2's attr_timeout)
    await waitFor(
      async () => (await fsp.stat(f)).nlink === 2 && (await fsp.readFile(f, "utf8")) === "b from B\nmore\n",
      3000,
      "the first name to show the link and the appended data",
    );
    assert.equal((await fsp.stat(f)).ino, (await fsp.stat(g)).ino);
    assert.equal(fs.readFileSync(path.join(B, "b"), "utf8"), "b from B\n");
    note("hard links: attributes seen through another name lag up to 1 s on fuse-native");
  });

  it("handled: no per-op timeout: an op slower than fuse-native's 15 s default still succeeds", async function () {
    this.timeout(SLOW_MS + 40_000);
    const d = tree();
    fs.writeFileSync(path.join(d.B, "slow"), "worth the wait\n");
    const fx = await startFixture(t, "slowOpen", d.A, d.B, d.C);
    const started = Date.now();
    const r = await sh(`cat ${JSON.stringify(path.join(fx.mnt, "slow"))}`, { timeoutMs: SLOW_MS + 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "worth the wait\n");
    assert.ok(Date.now() - started >= SLOW_MS - 500);
  });

  it("handled: every error the core throws keeps its errno; one without errno is EIO (never the binding's EPERM)", async () => {
    const d = tree();
    const fx = await startFixture(t, "oddErrors", d.A, d.B, d.C);
    const r = await py<Record<string, string>>(
      `out["err"] = attempt(os.lstat, A[0]); out["code"] = attempt(os.lstat, A[1]); out["none"] = attempt(os.lstat, A[2])`,
      [path.join(fx.mnt, "odd-error"), path.join(fx.mnt, "odd-code"), path.join(fx.mnt, "none")],
    );
    assert.deepEqual(r, { err: "EIO", code: "EIO", none: "ENOENT" });
  });

  it("pinned: renameat2 flags are EINVAL (libfuse 2 has no RENAME2); plain rename works", async () => {
    const { C } = await mounted();
    const r = await py<Record<string, string>>(
      `out["noreplace"] = attempt(renameat2, A[0], A[1], RENAME_NOREPLACE)
out["exchange"] = attempt(renameat2, A[0], A[2], RENAME_EXCHANGE)
out["plain"] = attempt(renameat2, A[0], A[1], 0)`,
      [path.join(C, "a"), path.join(C, "a2"), path.join(C, "b")],
    );
    assert.deepEqual(r, { noreplace: "EINVAL", exchange: "EINVAL", plain: "ok" });
    note("renameat2 RENAME_NOREPLACE / RENAME_EXCHANGE are EINVAL on fuse-native");
  });

  it("pinned: fallocate is EOPNOTSUPP (the binding has no fallocate)", async () => {
    const { C } = await mounted();
    const r = await py<Record<string, string>>(
      `fd = os.open(A[0], os.O_RDWR)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
out["r"] = attempt(lambda: check(libc.fallocate(fd, 0, 0, 4096)))
os.close(fd)`,
      [path.join(C, "a")],
    );
    assert.ok(["EOPNOTSUPP", "ENOTSUP"].includes(String(r.r)), r.r); // the same errno on Linux
  });

  it("pinned: names that are not UTF-8 are lost (shown with U+FFFD, not found, created with U+FFFD)", async () => {
    const d = tree();
    fs.writeFileSync(Buffer.concat([Buffer.from(`${d.B}/bad`), Buffer.from([0xff])]), "x");
    await mountNative(t, `${d.A}:${d.B}`, d.C);
    const r = await py<{ names: string[]; stat: string; made: string; upper: string[] }>(
      `out["names"] = sorted(os.listdir(A[0]))
out["stat"] = attempt(lambda: os.lstat(A[0] + b"/bad\\xff") and None)
out["made"] = attempt(lambda: os.close(os.open(A[0] + b"/new\\xfe", os.O_CREAT | os.O_WRONLY, 0o644)))
out["upper"] = sorted(os.listdir(A[1]))`,
      [d.C, d.A],
    );
    assert.ok(r.names.includes("bad\xef\xbf\xbd"), JSON.stringify(r.names));
    assert.equal(r.stat, "ENOENT");
    assert.equal(r.made, "ok");
    assert.ok(r.upper.includes("new\xef\xbf\xbd"), JSON.stringify(r.upper));
    note("non-UTF-8 names: fuse-native decodes names as UTF-8; use the kernel transport for them");
  });

  it("an open file that is removed stays readable; afterwards only the whiteout is left", async () => {
    const { A, C } = await mounted();
    const r = await py<{ during: string[]; data: string; after: string[] }>(
      `fd = os.open(A[0] + b"/b", os.O_RDONLY)
os.unlink(A[0] + b"/b")
out["during"] = sorted(os.listdir(A[0]))
out["data"] = fd_read(fd)
os.close(fd)
time.sleep(0.2)
out["after"] = sorted(os.listdir(A[1]))`,
      [C, A],
    );
    assert.equal(r.data, "b from B\n");
    assert.ok(r.after.includes(".wh.b"), JSON.stringify(r.after));
    assert.ok(!r.after.some((n) => n.startsWith(".fuse_hidden")), JSON.stringify(r.after));
    if (r.during.some((n) => n.startsWith(".fuse_hidden"))) {
      note(
        "while a removed file is still open, libfuse 2 shows it as .fuse_hidden* (a copy-up if it was lower)",
      );
    }
  });

  it("pinned: only the mounting user may use the mount (no allow_other: the binding hides the caller)", async () => {
    const { C } = await mounted();
    const r = await sh(`ls ${JSON.stringify(C)}`, { uid: 1000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Permission denied/);
  });

  it("a dead daemon's mount (transport endpoint is not connected) is cleaned by the next mount", async () => {
    const d = tree();
    const m = await mountNative(t, `${d.A}:${d.B}`, d.C);
    await killAndWait(m.daemonPids());
    const dead = await py<Record<string, string>>(`out["r"] = attempt(lambda: os.stat(A[0]) and None)`, [
      d.C,
    ]);
    assert.equal(dead.r, "ENOTCONN");
    assert.ok(isMounted(d.C), "the dead mount is still there");

    const r = await runCli(["mount", ...NATIVE_ARGS, `${d.A}:${d.B}`, d.C]);
    t.guardMountpoint(d.C, r.tag);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: removed a dead unionfs-ts mount at/);
    assert.deepEqual((await fs.promises.readdir(d.C)).sort(), ["a", "b", "d"]);
  });

  it("a daemon that crashes (uncaught exception) takes its mount down on the way out", async () => {
    const d = tree();
    const fx = await startFixture(t, "hugeInodes", d.A, d.B, d.C);
    const exited = new Promise<number | null>((resolve) => fx.child.once("exit", (code) => resolve(code)));
    fx.child.kill("SIGUSR2");
    assert.notEqual(await exited, 0);
    assert.ok(!isMounted(d.C), "nothing left mounted");
    assert.deepEqual(await fs.promises.readdir(d.C), []);
  });

  it("an unloadable binding is one clear error line, nothing mounted, no daemon", async () => {
    const d = tree();
    const saved = process.env.UNIONFS_TS_FUSE_NATIVE_PATH;
    process.env.UNIONFS_TS_FUSE_NATIVE_PATH = "/nonexistent/fuse-native";
    let r;
    try {
      r = await runCli(["mount", ...NATIVE_ARGS, `${d.A}:${d.B}`, d.C]);
    } finally {
      if (saved === undefined) delete process.env.UNIONFS_TS_FUSE_NATIVE_PATH;
      else process.env.UNIONFS_TS_FUSE_NATIVE_PATH = saved;
    }
    t.guardMountpoint(d.C, r.tag);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      "unionfs-ts: the fuse-native transport is unavailable (the optional package fuse-native is not " +
        "installed): install libfuse2 (apt-get install libfuse2) and fuse-native (npm install fuse-native)\n",
    );
    assert.ok(!isMounted(d.C));
  });

  it("auto picks the kernel transport for root, and -v says so", async () => {
    const d = tree();
    const r = await runCli(["mount", "-v", "--transport=auto", `${d.A}:${d.B}`, d.C]);
    t.guardMountpoint(d.C, r.tag);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /\(transport: kernel over \/dev\/fuse, auto: root and \/dev\/fuse opens\)/);
    await waitFor(() => isMounted(d.C), EXIT_DEADLINE_MS, "the mount");
  });
});
