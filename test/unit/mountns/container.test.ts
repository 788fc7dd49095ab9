import * as assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { SignalRelay } from "../../../src/mountns/container";
import { waitFor } from "../../helpers/mounts";

/** A process whose SIGHUP disposition is the default (it would die of one). */
function defaultDisposition(): ChildProcess {
  return spawn("sleep", ["30"], { stdio: "ignore" });
}

describe("mountns/container: SignalRelay", () => {
  let victim: ChildProcess;
  let relay: SignalRelay;
  beforeEach(() => {
    victim = defaultDisposition();
    relay = new SignalRelay(false);
  });
  afterEach(() => {
    relay.dispose();
    victim.kill("SIGKILL");
  });

  it("stands in for the default action when PID 1 stays without a handler", async () => {
    let kills = 0;
    relay.target = () => [];
    relay.pidNs = { pidOne: () => victim.pid, kill: () => kills++ };
    process.emit("SIGHUP", "SIGHUP");
    await waitFor(() => kills > 0, 5_000, "the stand-in kill");
    assert.equal(relay.emulated, "SIGHUP");
  });

  it("a PID 1 read once without a handler and then gone is not killed (^C stand-in race: its trap ran)", async () => {
    // Run's event loop can get to the signal after PID 1 caught it and began ending: a first reading
    // may show no handler; the PID 1 is then gone at the second.
    let calls = 0;
    let kills = 0;
    const forwarded: number[] = [];
    relay.target = () => {
      forwarded.push(calls);
      return [];
    };
    relay.pidNs = { pidOne: () => (calls++ === 0 ? victim.pid : undefined), kill: () => kills++ };
    process.emit("SIGHUP", "SIGHUP");
    await waitFor(() => calls >= 2, 5_000, "the second reading");
    assert.equal(kills, 0);
    assert.equal(relay.emulated, undefined);
    assert.deepEqual(forwarded, [2], "SIGHUP is passed on once the stand-in is called off");
  });
});
