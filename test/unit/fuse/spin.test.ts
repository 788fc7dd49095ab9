/**
 * The spinner (src/fuse/kernel/spin.ts): when a thread serving one mount reads its empty device again
 * instead of sleeping. No device here: only the decisions.
 */
import { strict as assert } from "node:assert";
import * as os from "node:os";
import { Spinner } from "../../../src/fuse/kernel/spin";

function withSpinEnv<T>(value: string | undefined, f: () => T): T {
  const saved = process.env.UNIONFS_TS_SPIN_US;
  if (value === undefined) delete process.env.UNIONFS_TS_SPIN_US;
  else process.env.UNIONFS_TS_SPIN_US = value;
  try {
    return f();
  } finally {
    if (saved === undefined) delete process.env.UNIONFS_TS_SPIN_US;
    else process.env.UNIONFS_TS_SPIN_US = saved;
  }
}

describe("fuse/kernel/spin", () => {
  it("never spins for a mount that must not (io_uring), nor where UNIONFS_TS_SPIN_US is 0 or not a number", () => {
    assert.equal(Spinner.of(true).enabled, false);
    assert.equal(
      withSpinEnv("0", () => Spinner.of(false).enabled),
      false,
    );
    assert.equal(
      withSpinEnv("soon", () => Spinner.of(false).enabled),
      false,
    );
  });

  it("spins 30 µs by default where there is more than one CPU, and as long as UNIONFS_TS_SPIN_US says", () => {
    const many = os.availableParallelism() > 1;
    assert.equal(
      withSpinEnv(undefined, () => Spinner.of(false).spinNs),
      many ? 30_000n : 0n,
    );
    assert.equal(
      withSpinEnv("250", () => Spinner.of(false).spinNs),
      many ? 250_000n : 0n,
    );
  });

  it("reads again until the spin is over, then says to sleep; a request begins a new spin", () => {
    const spin = new Spinner(2_000_000n); // 2 ms
    const t0 = process.hrtime.bigint();
    let turns = 0;
    while (spin.again()) turns++;
    const spent = process.hrtime.bigint() - t0;
    // Unless the machine has more threads to run than CPUs (the spinner then sleeps at once).
    if (turns > 0) assert.ok(spent >= 2_000_000n, `spun ${spent} ns`);
    spin.reset();
    assert.equal(spin.again(), turns > 0, "a new spin after a request");
  });

  it("counts itself among its mates while it spins, and out again when the spin ends either way", () => {
    const mates = { words: new Int32Array(4), index: 2 };
    const spin = new Spinner(50_000_000n, mates); // 50 ms: ends by a request, not by time
    if (!spin.again()) return; // a machine busier than its CPUs: no spin to count
    assert.equal(mates.words[2], 1);
    assert.equal(spin.again(), true);
    assert.equal(mates.words[2], 1, "counted once per spin");
    spin.reset(); // a request came
    assert.equal(mates.words[2], 0);
    spin.reset();
    assert.equal(mates.words[2], 0, "a reset without a spin counts nothing");
    const short = new Spinner(1_000_000n, mates);
    while (short.again()) assert.equal(mates.words[2], 1);
    assert.equal(mates.words[2], 0, "out again when the time is up");
  });
});
