import * as assert from "node:assert/strict";
import { dispositionIn, signalDisposition } from "../../../src/mountns/procs";

const SIGINT = 2;

/** The lines of /proc/PID/status that dispositionIn reads. */
function status(state: string, threads: number, sigIgn: string, sigCgt: string): string {
  return `Name:\tsh\nState:\t${state}\nThreads:\t${threads}\nSigIgn:\t${sigIgn}\nSigCgt:\t${sigCgt}\n`;
}

describe("mountns/procs", () => {
  it("reads a handler, SIG_IGN and the default action from the masks", () => {
    assert.equal(
      dispositionIn(status("S (sleeping)", 1, "0000000000000000", "0000000000010002"), SIGINT),
      "caught",
    );
    assert.equal(
      dispositionIn(status("S (sleeping)", 1, "0000000000000002", "0000000000010000"), SIGINT),
      "ignored",
    );
    assert.equal(
      dispositionIn(status("R (running)", 1, "0000000000000000", "0000000000010000"), SIGINT),
      "default",
    );
  });

  it("a PID 1 being reaped, with its handlers released, is not read as default (^C stand-in race)", () => {
    // Between open and read of /proc/PID/status the parent may reap the process: the kernel then
    // prints empty masks and Threads: 0, which once made run kill a container whose trap had run.
    assert.equal(
      dispositionIn(status("X (dead)", 0, "0000000000000000", "0000000000000000"), SIGINT),
      undefined,
    );
    assert.equal(
      dispositionIn(status("S (sleeping)", 0, "0000000000000000", "0000000000000000"), SIGINT),
      undefined,
    );
    assert.equal(
      dispositionIn(status("Z (zombie)", 1, "0000000000000000", "0000000000000000"), SIGINT),
      undefined,
    );
  });

  it("a live process of ours has its disposition read; a gone one is undefined", () => {
    assert.equal(signalDisposition(process.pid, 28), "default"); // SIGWINCH: node installs no handler
    assert.equal(signalDisposition(2 ** 22 + 1, SIGINT), undefined);
  });
});
