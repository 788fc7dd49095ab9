/**
 * FSYNC and large READs on I/O threads (src/fuse/kernel/io-threads.ts): an fsync or a read that waits for
 * the disk holds up no other request of the mount, and both still answer as a filesystem does. The slow
 * disk is the test seams UNIONFS_TS_SYNC_DELAY_MS and UNIONFS_TS_READ_DELAY_MS (each flush or read on a
 * thread waits that long first); the tests assert an order (the other requests are answered while the
 * slow one is still pending), not a time. Every test unmounts in its afterEach hook.
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { waitFor } from "../../helpers/mounts";
import { useCleanup, type Cleanup, type ForegroundUnion } from "../../helpers/unionfs";

const SLOW_MS = 5_000;

/** A large lower file: its READs are large enough for the I/O threads. */
const BIG = Buffer.alloc(4 << 20, "0123456789abcdef");

async function mountWithDelay(
  t: Cleanup,
  delayMs: number,
  seam = "UNIONFS_TS_SYNC_DELAY_MS",
): Promise<{ A: string; B: string; C: string; m: ForegroundUnion }> {
  const root = t.tree({ A: {}, B: { lower: "from the lower layer\n", d: { x: "x\n" }, big: BIG }, C: {} });
  const [A, B, C] = ["A", "B", "C"].map((d) => path.join(root, d)) as [string, string, string];
  const saved = process.env[seam];
  process.env[seam] = String(delayMs);
  try {
    const m = await t.foreground(`${A}:${B}`, C, { options: ["debug"] });
    return { A, B, C, m };
  } finally {
    if (saved === undefined) delete process.env[seam];
    else process.env[seam] = saved;
  }
}

/**
 * Drops `file`'s pages from the page cache (flushed first: dirty pages stay), so that the next read of
 * it through the mount would wait for the disk, which is when a READ goes to an I/O thread.
 */
function uncache(file: string): void {
  const fd = fs.openSync(file, "r");
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  const dd = spawnSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
  assert.equal(dd.status, 0, dd.stderr.toString());
}

/** A python3 `script` running until the test ends (killed in its cleanup), and what it printed so far. */
function slowProcess(
  t: Cleanup,
  script: string,
  what: string,
): { child: ChildProcess; output: () => string } {
  const child = spawn("python3", ["-c", script]);
  let out = "";
  child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  t.defer(`end ${what}`, async () => {
    child.kill("SIGKILL");
    await exited;
  });
  return { child, output: () => out };
}

/** While a slow request waits: a listing, a lookup, a read, a create and a write, each answered at once. */
function othersAnswered(C: string): void {
  assert.deepEqual(fs.readdirSync(path.join(C, "d")), ["x"]);
  assert.equal(fs.readFileSync(path.join(C, "lower"), "utf8"), "from the lower layer\n");
  fs.writeFileSync(path.join(C, "other"), "other\n");
  assert.equal(fs.statSync(path.join(C, "other")).size, 6);
}

/** `op` requests the daemon's debug log shows handed to an I/O thread. */
function handedOver(m: ForegroundUnion, op = "FSYNC"): number {
  return (m.stderr().match(new RegExp(`^unionfs-ts: ${op} .*answered by an I/O thread\\)$`, "gm")) ?? [])
    .length;
}

describe("FSYNC and large READs on I/O threads (kernel transport)", function () {
  this.timeout(60_000);
  const t = useCleanup();

  it("an fsync waiting for the disk holds up no other request of the mount", async () => {
    const { C, m } = await mountWithDelay(t, SLOW_MS);
    // fsync after fsync: the first ones are done inline while an I/O thread starts; the first one handed
    // over waits SLOW_MS there, and the process with it.
    const script = `import os\nfd=os.open(${JSON.stringify(path.join(C, "slow"))}, os.O_WRONLY|os.O_CREAT, 0o644)\nos.write(fd, b"data")\nfor i in range(100000): os.fsync(fd)\nprint("done")`;
    const slow = slowProcess(t, script, "the slow fsync's process");
    await waitFor(() => handedOver(m) > 0, 20_000, "an FSYNC handed to an I/O thread");
    othersAnswered(C);
    assert.equal(slow.output(), "", "the slow fsync is still pending after the other requests were answered");
    assert.equal(slow.child.exitCode, null);
    assert.equal(handedOver(m), 1, "no other fsync got to the thread meanwhile");
  });

  it("a read waiting for the disk holds up no other request of the mount", async () => {
    const { B, C, m } = await mountWithDelay(t, SLOW_MS, "UNIONFS_TS_READ_DELAY_MS");
    uncache(path.join(B, "big"));
    // Reads of the big lower file, each after its pages were dropped, over and over: the first ones are
    // done inline while an I/O thread starts; the first one handed over waits SLOW_MS there, and the
    // process with it.
    const lower = JSON.stringify(path.join(B, "big"));
    const merged = JSON.stringify(path.join(C, "big"));
    const script = `import os\nfor i in range(100000):\n  l=os.open(${lower}, os.O_RDONLY)\n  os.posix_fadvise(l, 0, 0, os.POSIX_FADV_DONTNEED)\n  os.close(l)\n  fd=os.open(${merged}, os.O_RDONLY|os.O_DIRECT)\n  os.pread(fd, 1<<20, 0)\n  os.close(fd)\nprint("done")`;
    const slow = slowProcess(t, script, "the slow read's process");
    await waitFor(() => handedOver(m, "READ") > 0, 20_000, "a READ handed to an I/O thread");
    othersAnswered(C);
    assert.equal(slow.output(), "", "the slow read is still pending after the other requests were answered");
    assert.equal(slow.child.exitCode, null);
  });

  it("reads of every size answer the file's bytes, beside writes and a copy-up of the same file", async () => {
    const { A, B, C, m } = await mountWithDelay(t, 0, "UNIONFS_TS_READ_DELAY_MS");
    const file = path.join(C, "big");
    let below = path.join(B, "big"); // the file the mount reads, made uncached before each read
    const sizes = [1, 4096, 65_536, 65_537, 1 << 20, 3_000_000];
    const check = (expected: Buffer): void => {
      for (const size of sizes) {
        for (const offset of [0, 12_345, (4 << 20) - 10]) {
          uncache(below);
          const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
          const buf = Buffer.alloc(size);
          const n = fs.readSync(fd, buf, 0, size, offset);
          fs.closeSync(fd);
          const want = expected.subarray(offset, offset + size);
          assert.equal(n, want.length, `read ${size} at ${offset}`);
          assert.ok(buf.subarray(0, n).equals(want), `bytes of ${size} at ${offset}`);
        }
      }
    };
    check(BIG);
    const held = fs.openSync(file, "r"); // opened on the lower file, follows the copy-up
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, "CHANGED", 100_000);
    fs.closeSync(fd);
    const changed = Buffer.from(BIG);
    changed.write("CHANGED", 100_000);
    below = path.join(A, "big");
    check(changed);
    assert.ok(handedOver(m, "READ") > 0, "some READs were answered by an I/O thread");
    const buf = Buffer.alloc(1 << 20);
    assert.equal(fs.readSync(held, buf, 0, buf.length, 0), buf.length);
    assert.ok(
      buf.equals(changed.subarray(0, 1 << 20)),
      "the handle opened before the copy-up reads the copy",
    );
    fs.closeSync(held);
    assert.ok(fs.readFileSync(path.join(A, "big")).equals(changed));
  });

  it("fsync and fdatasync answer 0 for written, read-only lower and copied-up files, and the data is there", async () => {
    const { A, C } = await mountWithDelay(t, 0);
    const file = path.join(C, "f");
    for (let i = 0; i < 20; i++) {
      const fd = fs.openSync(file, "a");
      fs.writeSync(fd, `line ${i}\n`);
      if (i % 2 === 0) fs.fsyncSync(fd);
      else fs.fdatasyncSync(fd);
      fs.closeSync(fd);
    }
    assert.equal(fs.readFileSync(path.join(A, "f"), "utf8").split("\n").length, 21);
    const ro = fs.openSync(path.join(C, "lower"), "r");
    fs.fsyncSync(ro); // a lower file: nothing to flush
    fs.closeSync(ro);
    const up = fs.openSync(path.join(C, "lower"), "r+");
    fs.writeSync(up, "FROM", 0);
    fs.fsyncSync(up);
    fs.closeSync(up);
    assert.equal(fs.readFileSync(path.join(A, "lower"), "utf8"), "FROM the lower layer\n");
  });
});
