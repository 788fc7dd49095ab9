/**
 * FUSE over io_uring (src/fuse/kernel/ring.ts): with `-o io_uring` and the fuse module's `enable_uring`
 * switch on, a mount takes its requests from io_uring entries, says so, and behaves as over /dev/fuse — several processes at
 * once, big reads and writes, a request made while the ring is being set up, a copy-up held in the
 * background while other requests are answered. The switch is machine-wide: it is turned on for this file
 * only and put back after; without it (or not root) the file is skipped. Every mount is unmounted in the
 * cleanup hooks, failed or not.
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { forceUnmount, isMounted, waitFor } from "../../helpers/mounts";
import { CLI_PATH, useCleanup, type Cleanup, type ForegroundUnion } from "../../helpers/unionfs";
import { startServer, stopServer } from "./server";

const SWITCH = "/sys/module/fuse/parameters/enable_uring";

/** Whether this process may write `file` (root, and not on a read-only /sys or /proc). */
function writable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
}

/** A union of an empty upper layer over `tree`, mounted in the foreground with -o debug and `options`. */
async function mount(
  t: Cleanup,
  tree: Parameters<Cleanup["tree"]>[0],
  options: readonly string[] = ["io_uring"],
): Promise<{ A: string; B: string; C: string; m: ForegroundUnion }> {
  const root = t.tree({ A: {}, B: tree, C: {} });
  const [A, B, C] = ["A", "B", "C"].map((d) => path.join(root, d)) as [string, string, string];
  const m = await t.foreground(`${A}:${B}`, C, { options: ["debug", ...options] });
  return { A, B, C, m };
}

function run(cmd: string, args: readonly string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (out += b.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, out })));
}

/** How the ring is served: a thread per CPU (the default), or the serving thread owning every queue. */
const MODES = [
  { name: "served by a thread per CPU", env: undefined },
  { name: "served by one thread owning every queue", env: "0" },
] as const;

describe("FUSE over io_uring (kernel transport)", function () {
  this.timeout(120_000);
  const t = useCleanup();
  let saved: string | undefined;

  before(function () {
    if (!writable(SWITCH)) this.skip();
    saved = fs.readFileSync(SWITCH, "utf8").trim();
    fs.writeFileSync(SWITCH, "1");
  });

  after(() => {
    if (saved !== undefined) fs.writeFileSync(SWITCH, saved === "Y" ? "1" : "0");
  });

  it("says which transport serves the mount: io_uring with -o io_uring, /dev/fuse without", async () => {
    const ring = await mount(t, { f: "x\n" });
    await waitFor(() => /requests over io_uring/.test(ring.m.stderr()), 10_000, "the INIT line");
    assert.equal(fs.readFileSync(path.join(ring.C, "f"), "utf8"), "x\n");
    const dev = await mount(t, { f: "x\n" }, []);
    await waitFor(() => /requests over \/dev\/fuse/.test(dev.m.stderr()), 10_000, "the INIT line");
    assert.doesNotMatch(dev.m.stderr(), /OVER_IO_URING/);
  });

  it("-o io_uring with the kernel's switch off: /dev/fuse, and a warning that says how to turn it on", async () => {
    fs.writeFileSync(SWITCH, "0");
    try {
      const { C, m } = await mount(t, { f: "x\n" });
      assert.equal(fs.readFileSync(path.join(C, "f"), "utf8"), "x\n");
      await waitFor(() => /requests over \/dev\/fuse/.test(m.stderr()), 10_000, "the INIT line");
      assert.match(
        m.stderr(),
        /io_uring asked for, but the kernel does not offer it \(as root: echo 1 > \/sys\/module\/fuse\/parameters\/enable_uring\)/,
      );
    } finally {
      fs.writeFileSync(SWITCH, "1");
    }
  });

  it("-o io_uring where no io_uring can be made (io_uring_disabled=2): /dev/fuse, and a warning that says why", async function () {
    const sysctl = "/proc/sys/kernel/io_uring_disabled";
    if (!writable(sysctl)) this.skip();
    const was = fs.readFileSync(sysctl, "utf8").trim();
    fs.writeFileSync(sysctl, "2");
    try {
      const { C, m } = await mount(t, { f: "x\n" });
      assert.equal(fs.readFileSync(path.join(C, "f"), "utf8"), "x\n");
      await waitFor(() => /requests over \/dev\/fuse/.test(m.stderr()), 10_000, "the INIT line");
      assert.match(m.stderr(), /io_uring asked for, but no io_uring can be set up here \(EPERM/);
    } finally {
      fs.writeFileSync(sysctl, was);
    }
  });

  it("on several CPUs, a thread per CPU serves the queues (and one thread with UNIONFS_TS_QUEUE_THREADS=0)", async function () {
    if (os.availableParallelism() < 2) this.skip();
    const perCpu = await mount(t, { f: "x\n" });
    await waitFor(() => /requests over io_uring/.test(perCpu.m.stderr()), 10_000, "the INIT line");
    assert.match(perCpu.m.stderr(), /requests over io_uring \(\d+ queues of \d+, a thread per CPU\)/);
    process.env.UNIONFS_TS_QUEUE_THREADS = "0";
    try {
      const one = await mount(t, { f: "x\n" });
      await waitFor(() => /requests over io_uring/.test(one.m.stderr()), 10_000, "the INIT line");
      assert.doesNotMatch(one.m.stderr(), /a thread per CPU/);
      assert.equal(fs.readFileSync(path.join(one.C, "f"), "utf8"), "x\n");
    } finally {
      delete process.env.UNIONFS_TS_QUEUE_THREADS;
    }
  });

  it("regression: a serving thread that dies fails the pending request and takes the mount down (no hang)", async () => {
    // The queue threads sat in io_uring_enter, nobody told them to stop, and the process's exit waited
    // for them for ever: the caller's stat hung in the kernel.
    const src = t.tree({ f: "f" });
    const mnt = t.tree({});
    const sv = await startServer(src, mnt, { FIXTURE_FACTORY: "createCrashy", FIXTURE_IO_URING: "1" });
    t.defer("stop the fixture", () => stopServer(sv));
    const st = spawnSync("stat", [path.join(mnt, "die-now")], { timeout: 10_000, encoding: "utf8" });
    assert.equal(st.signal, null, "stat must not hang");
    assert.notEqual(st.status, 0);
    await waitFor(() => sv.exited, 10_000, "the server to exit");
    assert.equal((await sv.exit).code, 1);
    assert.equal(isMounted(mnt), false);
  });

  for (const mode of MODES) describe(mode.name, () => behaviour(t, mode.env));
});

/** What a mount over io_uring must do, whichever way its queues are served (`env`: UNIONFS_TS_QUEUE_THREADS). */
function behaviour(t: Cleanup, env: string | undefined): void {
  before(() => {
    if (env === undefined) delete process.env.UNIONFS_TS_QUEUE_THREADS;
    else process.env.UNIONFS_TS_QUEUE_THREADS = env;
  });

  after(() => {
    delete process.env.UNIONFS_TS_QUEUE_THREADS;
  });

  it("a request made while the ring is set up is answered (it waits in an entry before the first wait)", async () => {
    // A stat sent the moment the mount shows waits for INIT, then for the ring to be complete, and is put
    // in an entry while the daemon is still registering the others (the bench's first stat hung so).
    for (let i = 0; i < 5; i++) {
      const root = t.tree({ A: {}, B: { f: "x\n" }, C: {} });
      const [A, B, C] = ["A", "B", "C"].map((d) => path.join(root, d)) as [string, string, string];
      const args = [CLI_PATH, "mount", "-f", "-o", "io_uring", `${A}:${B}`, C];
      const child = spawn(process.execPath, args, { stdio: "ignore" });
      const exited = new Promise((resolve) => child.once("exit", resolve));
      t.defer(`stop the mount at ${C}`, async () => {
        forceUnmount(C);
        child.kill("SIGKILL");
        await exited;
      });
      const deadline = Date.now() + 15_000;
      while (!isMounted(C)) {
        assert.ok(Date.now() < deadline, "the mount did not show within 15 s");
        await new Promise((resolve) => setImmediate(resolve));
      }
      let timer: NodeJS.Timeout | undefined;
      const answered = await Promise.race([
        fs.promises.stat(C).then((st) => st.isDirectory()),
        new Promise<string>(
          (resolve) => (timer = setTimeout(() => resolve("no answer within 10 s"), 10_000)),
        ),
      ]);
      clearTimeout(timer);
      assert.equal(answered, true);
    }
  });

  it("serves the union as /dev/fuse does: big writes and reads, renames, links, listings, fsync", async () => {
    const data = crypto.randomBytes(5 * 1024 * 1024 + 123);
    const { A, B, C } = await mount(t, { lower: "lower\n", d: { x: "x\n", y: "y\n" } });
    const big = path.join(C, "big");
    fs.writeFileSync(big, data);
    const fd = fs.openSync(big, "r+");
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    assert.ok(fs.readFileSync(big).equals(data));
    assert.ok(fs.readFileSync(path.join(A, "big")).equals(data), "the data is in the upper layer");
    fs.appendFileSync(path.join(C, "lower"), "more\n");
    assert.equal(fs.readFileSync(path.join(C, "lower"), "utf8"), "lower\nmore\n");
    assert.equal(fs.readFileSync(path.join(B, "lower"), "utf8"), "lower\n", "the lower layer is untouched");
    fs.renameSync(path.join(C, "d", "x"), path.join(C, "d", "z"));
    fs.linkSync(path.join(C, "d", "z"), path.join(C, "hard"));
    fs.unlinkSync(path.join(C, "d", "y"));
    assert.deepEqual(fs.readdirSync(path.join(C, "d")).sort(), ["z"]);
    assert.equal(fs.statSync(path.join(C, "hard")).nlink, 2);
    assert.deepEqual(fs.readdirSync(path.join(B, "d")).sort(), ["x", "y"]);
  });

  it("several processes at once, on every CPU: each sees its own writes and the others' files, byte for byte", async () => {
    const { C } = await mount(t, { shared: "s".repeat(100_000) });
    const script = (i: number): string =>
      [
        "import os, hashlib",
        `base = ${JSON.stringify(C)}`,
        "for n in range(200):",
        `    p = os.path.join(base, "p${i}-%d" % n)`,
        `    data = hashlib.sha256(b"%d-%d" % (${i}, n)).digest() * (n + 1)`,
        "    with open(p, 'wb') as f: f.write(data)",
        "    with open(p, 'rb') as f: assert f.read() == data, p",
        "    with open(os.path.join(base, 'shared'), 'rb') as f: assert len(f.read()) == 100000",
        "    os.stat(base); os.listdir(base)",
        "print('ok')",
      ].join("\n");
    // Each on its own CPU in turn (taskset), so that every queue gets requests.
    const cpu = (i: number): string => String(i % os.availableParallelism());
    const results = await Promise.all(
      [0, 1, 2, 3].map((i) => run("taskset", ["-c", cpu(i), "python3", "-c", script(i)])),
    );
    for (const r of results) assert.deepEqual(r, { code: 0, out: "ok\n" });
    assert.equal(fs.readdirSync(C).length, 1 + 4 * 200);
  });

  it("a READ of an open file is read on the caller's queue thread, not handed to the serving thread", async function () {
    if (env === "0" || os.availableParallelism() < 2) this.skip(); // no queue threads
    const data = crypto.randomBytes(3 * 1024 * 1024 + 5);
    const { C, m } = await mount(t, { f: data });
    await waitFor(() => /a thread per CPU/.test(m.stderr()), 10_000, "the transport line");
    assert.ok(fs.readFileSync(path.join(C, "f")).equals(data));
    const onQueues = m.stderr().match(/^unionfs-ts: READ #\d+ .* bytes read on queue \d+\)$/gm) ?? [];
    assert.ok(onQueues.length > 0, "READs read on the queue threads");
    assert.doesNotMatch(
      m.stderr(),
      /^unionfs-ts: READ #\d+ node=\d+ "/m,
      "no READ reached the serving thread",
    );
  });

  it("regression: a handle opened before a copy-up, its READs read on the queue threads, reads what another handle wrote after it", async function () {
    if (env === "0" || os.availableParallelism() < 2) this.skip(); // no queue threads
    const { A, C, m } = await mount(t, { f: "old data\n" });
    const file = path.join(C, "f");
    // O_DIRECT: every read is a READ of the handle (no page cache between).
    const script = [
      "import os, mmap",
      `p = ${JSON.stringify(file)}`,
      "buf = mmap.mmap(-1, 4096)",
      "ro = os.open(p, os.O_RDONLY | os.O_DIRECT)",
      "n = os.preadv(ro, [buf], 0); assert buf[:n] == b'old data\\n', buf[:n]",
      "rw = os.open(p, os.O_RDWR)",
      "os.pwrite(rw, b'NEW', 0); os.close(rw)",
      "n = os.preadv(ro, [buf], 0); assert buf[:n] == b'NEW data\\n', buf[:n]",
      "os.close(ro)",
      "print('ok')",
    ].join("\n");
    assert.deepEqual(await run("python3", ["-c", script]), { code: 0, out: "ok\n" });
    assert.equal(fs.readFileSync(path.join(A, "f"), "utf8"), "NEW data\n", "copied up");
    // The first read was a queue thread's; the one after the copy-up went to the serving thread.
    assert.match(m.stderr(), /^unionfs-ts: READ #\d+ .* bytes read on queue \d+\)$/m);
    assert.match(m.stderr(), /^unionfs-ts: READ #\d+ node=\d+ "\/f" -> 0$/m);
  });

  it("an fsync waiting for the disk holds up no other request: the I/O thread's reply is committed on the ring", async () => {
    process.env.UNIONFS_TS_SYNC_DELAY_MS = "5000";
    let u: Awaited<ReturnType<typeof mount>>;
    try {
      u = await mount(t, { lower: "lower\n" });
    } finally {
      delete process.env.UNIONFS_TS_SYNC_DELAY_MS;
    }
    const { C, m } = u;
    const handedOver = (): number =>
      (m.stderr().match(/^unionfs-ts: FSYNC .*answered by an I\/O thread\)$/gm) ?? []).length;
    // fsync after fsync: the first ones are done inline while an I/O thread starts.
    const script = `import os\nfd=os.open(${JSON.stringify(path.join(C, "slow"))}, os.O_WRONLY|os.O_CREAT, 0o644)\nos.write(fd, b"data")\nfor i in range(100000): os.fsync(fd)\nprint("done")`;
    const slow = spawn("python3", ["-c", script]);
    const exited = new Promise((resolve) => slow.once("exit", resolve));
    t.defer("end the slow fsync's process", async () => {
      slow.kill("SIGKILL");
      await exited;
    });
    await waitFor(() => handedOver() > 0, 20_000, "an FSYNC handed to an I/O thread");
    assert.equal(fs.readFileSync(path.join(C, "lower"), "utf8"), "lower\n");
    fs.writeFileSync(path.join(C, "other"), "other\n");
    assert.equal(slow.exitCode, null, "the slow fsync is still pending after the other requests");
    // Its reply comes through the ring: the process goes on to its next fsync.
    await waitFor(() => handedOver() > 1, 20_000, "a second FSYNC handed over (the first one answered)");
  });

  it("a big copy-up held for its background copy lets other requests through, then answers", async () => {
    const { A, C, m } = await mount(t, { big: "b".repeat(64 * 1024 * 1024), other: "o\n" });
    const writer = run("sh", [
      "-c",
      `printf X | dd of=${path.join(C, "big")} bs=1 seek=5 conv=notrunc status=none`,
    ]);
    // Meanwhile, other names answer (the held OPEN keeps its entry, the others serve).
    assert.equal(fs.readFileSync(path.join(C, "other"), "utf8"), "o\n");
    fs.writeFileSync(path.join(C, "new"), "n\n");
    assert.deepEqual(await writer, { code: 0, out: "" });
    const head = Buffer.alloc(8);
    const fd = fs.openSync(path.join(A, "big"), "r");
    fs.readSync(fd, head, 0, 8, 0);
    fs.closeSync(fd);
    assert.equal(head.toString(), "bbbbbXbb");
    assert.equal(fs.statSync(path.join(C, "big")).size, 64 * 1024 * 1024);
    assert.match(m.stderr(), /requests over io_uring/);
  });
}
