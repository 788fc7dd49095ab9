/**
 * The core user-visible cases through a fuse-native mount made by the CLI
 * (`unionfs-ts mount --transport=fuse-native …`, served by its daemon in another process): the A/B/C
 * demo, copy-up keeping the original bytes, whiteouts, the everyday commands, lower branches untouched,
 * and the daemon going away with the mount.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { isMounted, waitFor } from "../../helpers/mounts";
import { diffSnapshots, snapshotTree } from "../../helpers/snapshot";
import { writeTree } from "../../helpers/tmp";
import { py } from "../../helpers/syscalls";
import { EXIT_DEADLINE_MS, runCli, useCleanup } from "../../helpers/unionfs";
import { mountNative, requireNative, sh } from "./native";

const fsp = fs.promises;
const listing = async (d: string): Promise<string[]> => (await fsp.readdir(d)).sort();

describe("fuse-native transport: the union as a user sees it", function () {
  this.timeout(60_000);
  const t = useCleanup();
  before(function () {
    requireNative(this);
  });

  /** A (top, writable) over B, mounted on C. */
  async function abc(): Promise<{ A: string; B: string; C: string; root: string }> {
    const root = t.tempDir("native");
    const [A, B, C] = ["A", "B", "C"].map((n) => path.join(root, n)) as [string, string, string];
    writeTree(root, {
      A: { a: "a from A\n", x: "x from A\n" },
      B: { b: "b from B\n", x: "x from B\n" },
      C: {},
    });
    return { A, B, C, root };
  }

  it("the A/B/C demo: merge, copy-up on append, whiteout on rm, unmount", async () => {
    const { A, B, C, root } = await abc();
    const lowerBefore = await snapshotTree(B);
    const m = await mountNative(t, `${A}:${B}`, C, true);
    assert.deepEqual(await listing(C), ["a", "b", "x"]);
    assert.equal(await fsp.readFile(path.join(C, "x"), "utf8"), "x from A\n");

    const r = await sh("echo change >>C/b && cat A/b && cat B/b && rm C/b && ls -A A && ls C", { cwd: root });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "b from B\nchange\nb from B\n.wh..wh.unionfs\n.wh.b\na\nx\na\nx\n");
    assert.ok(fs.existsSync(path.join(A, ".wh.b")));
    assert.equal(fs.readFileSync(path.join(B, "b"), "utf8"), "b from B\n");
    assert.deepEqual(diffSnapshots(lowerBefore, await snapshotTree(B)), []);

    const u = await runCli(["umount", C]);
    assert.equal(u.status, 0, u.stderr);
    await waitFor(() => m.daemonPids().length === 0, EXIT_DEADLINE_MS, "the daemon to exit");
    assert.ok(!isMounted(C));
    assert.deepEqual(await listing(C), []);
  });

  it("says which transport serves with -v", async () => {
    const { A, B, C } = await abc();
    const r = await runCli(["mount", "-v", "--transport=fuse-native", `${A}:${B}`, C]);
    t.guardMountpoint(C, r.tag);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /serving .*C \(transport: fuse-native, asked for\)/);
  });

  it("copy-up on append keeps the original bytes (binary, with NULs) and leaves the lower file alone", async () => {
    const { A, B, C } = await abc();
    const original = Buffer.concat([
      Buffer.from([0, 1, 2, 255]),
      Buffer.alloc(200_000, 7),
      Buffer.from("end"),
    ]);
    fs.writeFileSync(path.join(B, "bin"), original);
    await mountNative(t, `${A}:${B}`, C);
    await fsp.appendFile(path.join(C, "bin"), "+more");
    const want = Buffer.concat([original, Buffer.from("+more")]);
    assert.ok((await fsp.readFile(path.join(C, "bin"))).equals(want));
    assert.ok(fs.readFileSync(path.join(A, "bin")).equals(want));
    assert.ok(fs.readFileSync(path.join(B, "bin")).equals(original));
  });

  it("mkdir, rmdir, mv, ln, ln -s, chmod, touch, truncate; the lower branch stays as it was", async () => {
    const { A, B, C, root } = await abc();
    writeTree(B, { d: { inner: "in d\n" }, e: {}, t: "0123456789" });
    const lowerBefore = await snapshotTree(B);
    await mountNative(t, `${A}:${B}`, C);
    const script = [
      "mkdir C/new && mkdir C/new/sub && rmdir C/new/sub",
      "rmdir C/e",
      "mv C/x C/x2",
      "ln C/a C/a-link",
      "ln -s a C/a-sym",
      "chmod 600 C/b",
      "touch C/fresh",
      "truncate -s 4 C/t",
      "echo more >>C/d/inner",
    ].join(" && ");
    const r = await sh(script, { cwd: root });
    assert.equal(r.status, 0, r.stderr);

    assert.deepEqual(await listing(C), ["a", "a-link", "a-sym", "b", "d", "fresh", "new", "t", "x2"]);
    assert.deepEqual(await listing(path.join(C, "new")), []);
    assert.equal(await fsp.readFile(path.join(C, "x2"), "utf8"), "x from A\n");
    assert.equal(await fsp.readlink(path.join(C, "a-sym")), "a");
    assert.equal(await fsp.readFile(path.join(C, "a-sym"), "utf8"), "a from A\n");
    const [a, link] = await Promise.all([fsp.stat(path.join(C, "a")), fsp.stat(path.join(C, "a-link"))]);
    assert.equal(link.ino, a.ino);
    assert.equal(a.nlink, 2);
    assert.equal((await fsp.stat(path.join(C, "b"))).mode & 0o777, 0o600);
    assert.equal(await fsp.readFile(path.join(C, "t"), "utf8"), "0123");
    assert.equal(await fsp.readFile(path.join(C, "d/inner"), "utf8"), "in d\nmore\n");
    assert.equal((await fsp.stat(path.join(C, "fresh"))).size, 0);

    // what landed in the writable branch: copies, whiteouts, new names
    for (const f of [".wh.e", "b", "t", "d/inner", "fresh", "new", "x2", "a-link", "a-sym"]) {
      assert.ok(fs.lstatSync(path.join(A, f)), f);
    }
    assert.ok(!fs.existsSync(path.join(A, "x")));
    assert.deepEqual(diffSnapshots(lowerBefore, await snapshotTree(B)), []);
  });

  it("xattrs (set, get with the size query, list, remove) and statfs", async () => {
    const { A, B, C } = await abc();
    await mountNative(t, `${A}:${B}`, C);
    const r = await py<Record<string, unknown>>(
      `f = A[0] + b"/b"
os.setxattr(f, "user.k", b"v" * 300)
out["get"] = len(os.getxattr(f, "user.k"))
out["list"] = sorted(n for n in os.listxattr(f) if n.startswith("user."))
buf = ctypes.create_string_buffer(10)
out["small"] = attempt(lambda: check(libc.getxattr(f, b"user.k", buf, 10)))
out["size"] = libc.getxattr(f, b"user.k", None, 0)
os.removexattr(f, "user.k")
out["gone"] = attempt(os.getxattr, f, "user.k")
u, m = os.statvfs(A[1]), os.statvfs(A[0])
out["total"] = [u.f_blocks * u.f_frsize, m.f_blocks * m.f_frsize]
out["namemax"] = m.f_namemax`,
      [C, A],
    );
    assert.deepEqual(r.list, ["user.k"]);
    assert.equal(r.get, 300);
    assert.equal(r.small, "ERANGE");
    assert.equal(r.size, 300);
    assert.equal(r.gone, "ENODATA");
    const [upper, union] = r.total as [number, number];
    assert.equal(union, upper);
    assert.equal(r.namemax, 255);
    assert.equal(fs.readFileSync(path.join(B, "b"), "utf8"), "b from B\n", "the xattr copy-up left B alone");
  });

  it("errors keep their errno: ENOTEMPTY, ENOENT, EEXIST, ENOTDIR", async () => {
    const { A, B, C } = await abc();
    writeTree(B, { d: { f: "x" } });
    await mountNative(t, `${A}:${B}`, C);
    const code = async (p: Promise<unknown>): Promise<string | undefined> =>
      p.then(
        () => undefined,
        (e: NodeJS.ErrnoException) => e.code,
      );
    assert.equal(await code(fsp.rmdir(path.join(C, "d"))), "ENOTEMPTY");
    assert.equal(await code(fsp.unlink(path.join(C, "nope"))), "ENOENT");
    assert.equal(await code(fsp.mkdir(path.join(C, "d"))), "EEXIST");
    assert.equal(await code(fsp.readdir(path.join(C, "a"))), "ENOTDIR");
  });

  it("the daemon exits by itself when the mount is unmounted from outside (plain umount)", async () => {
    const { A, B, C } = await abc();
    const m = await mountNative(t, `${A}:${B}`, C);
    const pids = m.daemonPids();
    assert.equal(pids.length, 1);
    const r = await sh(`umount ${JSON.stringify(C)}`);
    assert.equal(r.status, 0, r.stderr);
    await waitFor(() => m.daemonPids().length === 0, EXIT_DEADLINE_MS, "the daemon to exit");
  });

  it("SIGTERM to a -f daemon unmounts and exits 0", async () => {
    const { A, B, C } = await abc();
    const f = await t.foreground(`${A}:${B}`, C, { extraArgs: ["--transport=fuse-native"] });
    assert.deepEqual(await listing(C), ["a", "b", "x"]);
    process.kill(f.pid, "SIGTERM");
    const { code } = await f.exited;
    assert.equal(code, 0, f.stderr());
    assert.ok(!isMounted(C));
  });
});
