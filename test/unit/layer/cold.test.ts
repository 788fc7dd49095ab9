/** When the disk counts as cold (cold.ts): enough reads that waited off the CPU, lately, on any thread. */
import { strict as assert } from "node:assert";
import { ColdDisk, waitedFor } from "../../../src/layer/cold";

function offCpu(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe("layer/cold", () => {
  it("tells a call that waited off the CPU from a quick one, and passes its value on", () => {
    assert.deepEqual(
      waitedFor(() => 42),
      { value: 42, waited: false },
    );
    assert.equal(waitedFor(() => offCpu(5)).waited, true);
  });

  it("is not cold at first, nor after a few slow reads; is after WAITS_FOR_COLD of them", () => {
    const disk = new ColdDisk();
    assert.equal(disk.isCold(), false);
    for (let i = 0; i < 7; i++) disk.waited();
    assert.equal(disk.isCold(), false, "a handful of slow reads (a first call, a preemption)");
    disk.waited();
    assert.equal(disk.isCold(), true);
  });

  it("is one state for every thread that has its buffer", () => {
    const disk = new ColdDisk();
    const other = new ColdDisk(disk.shared);
    for (let i = 0; i < 8; i++) other.waited();
    assert.equal(disk.isCold(), true);
  });

  it("counts slow reads within a window only, and stays cold for a while after the last", () => {
    let now = 2 ** 31 - 600; // the Int32 milliseconds wrap during this test
    const disk = new ColdDisk(undefined, () => now);
    for (let i = 0; i < 7; i++) disk.waited();
    now += 501;
    disk.waited();
    assert.equal(disk.isCold(), false, "the first seven fell out of the window");
    for (let i = 0; i < 7; i++) disk.waited();
    assert.equal(disk.isCold(), true);
    now += 1_000;
    assert.equal(disk.isCold(), true, "still within COLD_FOR_MS");
    now += 1;
    assert.equal(disk.isCold(), false);
    now += 2 ** 32; // a wrap later, nothing lingers
    assert.equal(disk.isCold(), false);
  });

  it("times no read for a while after the disk was found cold, and times them again before it expires", () => {
    const t = 1_000_000;
    let now = t;
    const disk = new ColdDisk(undefined, () => now);
    assert.equal(disk.wantsEvidence(), true, "warm: every read is timed");
    for (let i = 0; i < 8; i++) disk.waited();
    assert.equal(disk.wantsEvidence(), false, "just found cold");
    now = t + 250;
    // Reads that wait now are not counted: had they been, the cold state would date from t + 250.
    for (let i = 0; i < 8; i++) {
      const value = disk.timed(() => {
        offCpu(2);
        return i;
      });
      assert.equal(value, i);
    }
    now = t + 301;
    assert.equal(disk.wantsEvidence(), true, "timed again: the cold state still dates from t");
    assert.equal(disk.isCold(), true);
  });

  it("stays cold without a gap while the reads keep waiting", () => {
    const t = 1_000_000;
    let now = t;
    const disk = new ColdDisk(undefined, () => now);
    for (let i = 0; i < 8; i++) disk.waited();
    let timed = 0;
    for (now = t; now <= t + 3_000; now += 50) {
      assert.equal(disk.isCold(), true, `cold at t + ${now - t}`);
      if (disk.wantsEvidence()) timed += 1;
      disk.timed(() => offCpu(2));
    }
    assert.ok(timed > 0 && timed < 60, `some reads timed, not all: ${timed} of 61`);
  });

  it("counts a timed read that waited, and not a quick one", () => {
    const disk = new ColdDisk(undefined, () => 1_000_000); // one window: the clock stands still
    for (let i = 0; i < 8; i++) disk.timed(() => 1);
    assert.equal(disk.isCold(), false, "quick reads are no evidence");
    for (let i = 0; i < 8; i++) disk.timed(() => offCpu(2));
    assert.equal(disk.isCold(), true);
  });
});
