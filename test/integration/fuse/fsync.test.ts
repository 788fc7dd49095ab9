/**
 * FSYNC on the sync thread (src/fuse/kernel/sync-thread.ts): an fsync that waits for the disk holds up
 * no other request of the mount, and fsync through the mount still answers as a filesystem does. The
 * slow disk is the test seam UNIONFS_TS_SYNC_DELAY_MS (each flush waits that long first); the test
 * asserts an order (the other requests are answered while the fsync is still pending), not a time.
 * Every test unmounts in its afterEach hook.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { waitFor } from "../../helpers/mounts";
import { useCleanup, type Cleanup, type ForegroundUnion } from "../../helpers/unionfs";

const SLOW_MS = 5_000;

async function mountWithDelay(
  t: Cleanup,
  delayMs: number,
): Promise<{ A: string; C: string; m: ForegroundUnion }> {
  const root = t.tree({ A: {}, B: { lower: "from the lower layer\n", d: { x: "x\n" } }, C: {} });
  const [A, B, C] = ["A", "B", "C"].map((d) => path.join(root, d)) as [string, string, string];
  const saved = process.env.UNIONFS_TS_SYNC_DELAY_MS;
  process.env.UNIONFS_TS_SYNC_DELAY_MS = String(delayMs);
  try {
    const m = await t.foreground(`${A}:${B}`, C, { options: ["debug"] });
    return { A, C, m };
  } finally {
    if (saved === undefined) delete process.env.UNIONFS_TS_SYNC_DELAY_MS;
    else process.env.UNIONFS_TS_SYNC_DELAY_MS = saved;
  }
}

/** FSYNC requests the daemon's debug log shows handed to the sync thread. */
function handedOver(m: ForegroundUnion): number {
  return (m.stderr().match(/^unionfs-ts: FSYNC .*answered by the sync thread\)$/gm) ?? []).length;
}

describe("FSYNC on a thread of its own (kernel transport)", function () {
  this.timeout(60_000);
  const t = useCleanup();

  it("an fsync waiting for the disk holds up no other request of the mount", async () => {
    const { C, m } = await mountWithDelay(t, SLOW_MS);
    // fsync after fsync: the first ones are done inline while the sync thread starts; the first one handed
    // over waits SLOW_MS there, and the process with it.
    const script = `import os\nfd=os.open(${JSON.stringify(path.join(C, "slow"))}, os.O_WRONLY|os.O_CREAT, 0o644)\nos.write(fd, b"data")\nfor i in range(100000): os.fsync(fd)\nprint("done")`;
    const slow = spawn("python3", ["-c", script]);
    let out = "";
    slow.stdout.on("data", (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => slow.once("exit", resolve));
    t.defer("end the slow fsync's process", async () => {
      slow.kill("SIGKILL");
      await exited;
    });
    await waitFor(() => handedOver(m) > 0, 20_000, "an FSYNC handed to the sync thread");
    // Meanwhile: a listing, a lookup, a read, a create and a write, each answered at once.
    assert.deepEqual(fs.readdirSync(path.join(C, "d")), ["x"]);
    assert.equal(fs.readFileSync(path.join(C, "lower"), "utf8"), "from the lower layer\n");
    fs.writeFileSync(path.join(C, "other"), "other\n");
    assert.equal(fs.statSync(path.join(C, "other")).size, 6);
    assert.equal(out, "", "the slow fsync is still pending after the other requests were answered");
    assert.equal(slow.exitCode, null);
    assert.equal(handedOver(m), 1, "no other fsync got to the thread meanwhile");
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
