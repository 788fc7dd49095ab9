/**
 * FUSE passthrough through a real mount: which opens the kernel serves itself, and that nothing a user
 * sees changes because of it.
 *
 * The daemon runs in the foreground with `-o debug`, so its stderr lists every request it served: a
 * passed-through file shows no READ or WRITE. Skipped where the kernel does not grant FUSE_PASSTHROUGH.
 * Every test unmounts in its afterEach hook.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { waitFor } from "../../helpers/mounts";
import { useCleanup, type Cleanup, type ForegroundUnion } from "../../helpers/unionfs";

const fsp = fs.promises;

/** READ and WRITE requests the daemon logged since `from` (an offset in its stderr). */
function dataRequests(m: ForegroundUnion, from: number): { reads: number; writes: number } {
  const log = m.stderr().slice(from);
  return {
    reads: (log.match(/^unionfs-ts: READ #/gm) ?? []).length,
    writes: (log.match(/^unionfs-ts: WRITE #/gm) ?? []).length,
  };
}

async function mountDebug(
  t: Cleanup,
  options: string[] = [],
): Promise<{ m: ForegroundUnion; A: string; B: string; C: string }> {
  const root = t.tree({ A: { up: "upper bytes\n" }, B: { low: "lower bytes\n" }, C: {} });
  const [A, B, C] = ["A", "B", "C"].map((d) => path.join(root, d)) as [string, string, string];
  const m = await t.foreground(`${A}:${B}`, C, { options: ["debug", ...options] });
  // The INIT summary is logged right after the reply, so it may trail the mount by a moment.
  await waitFor(() => /INIT: protocol/.test(m.stderr()), 10_000, "the daemon's INIT log line");
  return { m, A, B, C };
}

function granted(m: ForegroundUnion): boolean {
  return /INIT: protocol .*\|PASSTHROUGH/.test(m.stderr());
}

describe("fuse passthrough (kernel transport)", function () {
  this.timeout(60_000);
  const t = useCleanup();

  it("serves reads and writes of files in the writable branch without the daemon", async function () {
    const { m, A, C } = await mountDebug(t);
    if (!granted(m)) this.skip();
    const mark = m.stderr().length;
    const data = Buffer.alloc(3 << 20, 7);
    await fsp.writeFile(path.join(C, "new"), data);
    await fsp.appendFile(path.join(C, "up"), "more\n");
    assert.deepEqual(await fsp.readFile(path.join(C, "new")), data);
    assert.equal(await fsp.readFile(path.join(C, "up"), "latin1"), "upper bytes\nmore\n");
    assert.deepEqual(dataRequests(m, mark), { reads: 0, writes: 0 });
    assert.equal((await fsp.stat(path.join(C, "new"))).size, data.length);
    assert.deepEqual(await fsp.readFile(path.join(A, "new")), data);
  });

  it("keeps read-only opens of lower files with the daemon by default, so they follow a copy-up", async function () {
    const { m, B, C } = await mountDebug(t);
    if (!granted(m)) this.skip();
    const mark = m.stderr().length;
    const reader = await fsp.open(path.join(C, "low"), "r");
    try {
      assert.equal((await reader.read(Buffer.alloc(5), 0, 5, 0)).bytesRead, 5);
      await fsp.appendFile(path.join(C, "low"), "appended\n");
      const buf = Buffer.alloc(64);
      const { bytesRead } = await reader.read(buf, 0, 64, 0);
      assert.equal(buf.subarray(0, bytesRead).toString("latin1"), "lower bytes\nappended\n");
    } finally {
      await reader.close();
    }
    await waitFor(
      () => dataRequests(m, mark).reads > 0,
      10_000,
      "the lower file's reads in the daemon's log",
    );
    assert.equal(await fsp.readFile(path.join(B, "low"), "latin1"), "lower bytes\n");
  });

  it("passthrough=lower serves lower reads in the kernel, and a copy-up still writes the upper copy", async function () {
    const { m, A, B, C } = await mountDebug(t, ["passthrough=lower"]);
    if (!granted(m)) this.skip();
    const mark = m.stderr().length;
    const reader = await fsp.open(path.join(C, "low"), "r");
    try {
      assert.equal(await reader.readFile("latin1"), "lower bytes\n");
      assert.equal(dataRequests(m, mark).reads, 0);
      // The node passes through to the lower file, so the writer's open (of the copy) gets a fresh node.
      await fsp.appendFile(path.join(C, "low"), "appended\n");
    } finally {
      await reader.close();
    }
    assert.equal(await fsp.readFile(path.join(C, "low"), "latin1"), "lower bytes\nappended\n");
    assert.equal(await fsp.readFile(path.join(A, "low"), "latin1"), "lower bytes\nappended\n");
    assert.equal(await fsp.readFile(path.join(B, "low"), "latin1"), "lower bytes\n");
  });

  it("a cached open after passthrough writes does not read stale cached pages (the kernel drops them)", async function () {
    const { m, C } = await mountDebug(t);
    if (!granted(m)) this.skip();
    const f = path.join(C, "f");
    await fsp.writeFile(f, "old-data");
    // A set-id bit keeps the file away from passthrough: this open is cached and fills the page cache.
    await fsp.chmod(f, 0o4644);
    assert.equal(await fsp.readFile(f, "latin1"), "old-data");
    await fsp.chmod(f, 0o644);
    // Passthrough again; same size and no O_TRUNC, so no attribute change drops the cached pages.
    const w = await fsp.open(f, "r+");
    try {
      await w.write("new-data", 0, "latin1");
    } finally {
      await w.close();
    }
    await fsp.chmod(f, 0o4644);
    assert.equal(await fsp.readFile(f, "latin1"), "new-data");
  });

  it("passthrough=off serves every read and write in the daemon", async function () {
    const { m, C } = await mountDebug(t, ["passthrough=off"]);
    assert.equal(granted(m), false);
    const mark = m.stderr().length;
    await fsp.writeFile(path.join(C, "new"), "bytes");
    await fsp.appendFile(path.join(C, "up"), "more\n");
    assert.equal(await fsp.readFile(path.join(C, "low"), "latin1"), "lower bytes\n");
    // stderr reaches the test asynchronously: wait for the lines rather than expect them at once.
    await waitFor(
      () => {
        const n = dataRequests(m, mark);
        return n.writes >= 2 && n.reads >= 1;
      },
      10_000,
      "READ and WRITE requests in the daemon's log",
    );
  });
});

describe("background copy-up (kernel transport)", function () {
  this.timeout(60_000);
  const t = useCleanup();

  it("copies a big lower file up while other requests are answered, keeping its bytes", async function () {
    const root = t.tree({ A: {}, B: { small: "s" }, C: {} });
    const [A, B, C] = ["A", "B", "C"].map((d) => path.join(root, d)) as [string, string, string];
    const big = Buffer.alloc(96 << 20);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    await fsp.writeFile(path.join(B, "big"), big);
    await t.union(`${A}:${B}`, C);
    const append = fsp.appendFile(path.join(C, "big"), "tail");
    let answered = 0;
    let appended = false;
    void append.then(() => (appended = true));
    // Names that exist nowhere: each is a LOOKUP the daemon must answer, copy-up or not.
    while (!appended && answered < 10_000) {
      await assert.rejects(fsp.stat(path.join(C, `missing-${answered}`)), { code: "ENOENT" });
      answered++;
    }
    await append;
    const copy = await fsp.readFile(path.join(A, "big"));
    assert.equal(copy.length, big.length + 4);
    assert.ok(copy.subarray(0, big.length).equals(big), "the original bytes survived the copy-up");
    assert.equal(copy.subarray(big.length).toString("latin1"), "tail");
    assert.equal((await fsp.stat(path.join(B, "big"))).size, big.length);
  });
});
