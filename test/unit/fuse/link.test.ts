/**
 * The hub (src/fuse/kernel/link.ts, hub.ts) without a mount: how it answers the mounting thread's orders
 * for a mount that is never served (mount(2) failed), a filesystem that cannot be built, and its own
 * death. Each mount's events end with exactly one `end`.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { sharedThread, type LinkEvents, type MountData } from "../../../src/fuse/kernel/link";
import type { WorkerMessage } from "../../../src/fuse/kernel/messages";
import { waitFor } from "../../helpers/mounts";
import { EXIT_CODE } from "./fixtures/hub-cores";

interface Seen {
  messages: WorkerMessage[];
  ends: number[];
  ev: LinkEvents;
}

function watch(): Seen {
  const seen: Seen = {
    messages: [],
    ends: [],
    ev: {
      message: (m) => seen.messages.push(m),
      error: () => undefined,
      end: (code) => seen.ends.push(code),
    },
  };
  return seen;
}

describe("fuse/kernel/link: the hub's orders", function () {
  this.timeout(20_000);
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-hub-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function data(branch: string, factory?: MountData["factory"]): MountData {
    return {
      fd: -1, // never served: no order here opens a mount
      config: { branches: [{ path: branch, mode: "rw" }], whiteout: "aufs" },
      debug: false,
      ...(factory === undefined ? {} : { factory }),
    };
  }

  it("builds a mount, and destroys it when mount(2) failed: built, then one end with 0", async () => {
    const s = watch();
    const link = sharedThread(data(dir), s.ev);
    await waitFor(() => s.messages.length > 0, 15_000, "the hub to build the mount");
    assert.deepEqual(s.messages, [{ type: "built" }]);
    link.open(false);
    await waitFor(() => s.ends.length > 0, 10_000, "the mount to end");
    assert.deepEqual(s.ends, [0]);
  });

  it("a filesystem that cannot be built: failed with why, then end 0; the hub goes on", async () => {
    const bad = watch();
    sharedThread(data(path.join(dir, "missing")), bad.ev);
    await waitFor(() => bad.ends.length > 0, 15_000, "the failed mount to end");
    const [first] = bad.messages;
    assert.equal(first?.type, "failed");
    assert.match(first?.type === "failed" ? first.message : "", /missing' does not exist/);
    assert.deepEqual(bad.ends, [0]);

    const good = watch();
    sharedThread(data(dir), good.ev).open(false);
    await waitFor(() => good.ends.length > 0, 10_000, "the next mount to end");
    assert.deepEqual(good.messages, [{ type: "built" }]);
  });

  it("a hub that dies ends every mount it held with its exit code; the next mount gets a new hub", async () => {
    const held = watch();
    sharedThread(data(dir), held.ev);
    await waitFor(() => held.messages.length > 0, 15_000, "the first mount to be built");
    const fatal = watch();
    sharedThread(
      data(dir, { module: require.resolve("./fixtures/hub-cores"), name: "exitWhileBuilt" }),
      fatal.ev,
    );
    await waitFor(() => held.ends.length > 0 && fatal.ends.length > 0, 10_000, "both mounts to end");
    assert.deepEqual(held.ends, [EXIT_CODE]);
    assert.deepEqual(fatal.ends, [EXIT_CODE]);

    const next = watch();
    sharedThread(data(dir), next.ev).open(false);
    await waitFor(() => next.ends.length > 0, 15_000, "a mount on the new hub to end");
    assert.deepEqual(next.messages, [{ type: "built" }]);
    assert.deepEqual(next.ends, [0]);
  });
});
