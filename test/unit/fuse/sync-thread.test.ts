/**
 * The sync thread (src/fuse/kernel/sync-thread.ts, sync-worker.ts) against a pipe standing in for
 * /dev/fuse: each job is flushed, its descriptor closed, and exactly one reply written with its errno.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SyncThread } from "../../../src/fuse/kernel/sync-thread";
import { pipe } from "../../../src/sys/libc";
import { waitFor } from "../../helpers/mounts";

/** The 16-byte reply headers read from `fd` until `count` came. */
async function replies(
  fd: number,
  count: number,
): Promise<Array<{ len: number; error: number; unique: bigint }>> {
  const out: Array<{ len: number; error: number; unique: bigint }> = [];
  const buf = Buffer.alloc(16);
  await waitFor(
    () => {
      try {
        while (out.length < count && fs.readSync(fd, buf, 0, 16, null) === 16) {
          out.push({ len: buf.readUInt32LE(0), error: buf.readInt32LE(4), unique: buf.readBigUInt64LE(8) });
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      }
      return out.length >= count;
    },
    10_000,
    `${count} replies`,
  );
  return out;
}

describe("fuse/kernel/sync-thread", () => {
  let dir: string;
  let ends: [number, number];
  let thread: SyncThread;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-sync-"));
    ends = pipe();
    thread = new SyncThread(ends[1], 300);
  });
  afterEach(() => {
    thread.close();
    ends.forEach((fd) => fs.closeSync(fd));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** take() until the thread runs and takes the job (the first calls start it and answer false). */
  async function handOver(fd: number, datasync: boolean, unique: bigint): Promise<void> {
    await waitFor(() => thread.take(fd, datasync, unique), 10_000, "the sync thread to take a job");
  }

  it("answers each job once, with its errno, on a duplicate of the descriptor (the caller's stays open)", async () => {
    const fd = fs.openSync(path.join(dir, "f"), "w");
    fs.writeSync(fd, "data");
    await handOver(fd, false, 7n);
    assert.ok(thread.take(fd, true, 8n));
    assert.ok(thread.take(ends[0], false, 9n)); // fsync of a pipe: EINVAL
    const got = await replies(ends[0], 3);
    assert.deepEqual(got, [
      { len: 16, error: 0, unique: 7n },
      { len: 16, error: 0, unique: 8n },
      { len: 16, error: -os.constants.errno.EINVAL, unique: 9n },
    ]);
    assert.equal(fs.fstatSync(fd).size, 4, "the caller's descriptor is still open");
    fs.closeSync(fd);
  });

  it("ends after being idle, and the next fsync starts it again", async () => {
    const fd = fs.openSync(path.join(dir, "f"), "w");
    await handOver(fd, false, 1n);
    await replies(ends[0], 1);
    await waitFor(() => !thread.running, 10_000, "the idle thread to end");
    assert.equal(thread.take(fd, false, 2n), false, "done inline while a new thread starts");
    await handOver(fd, false, 3n);
    assert.deepEqual(
      (await replies(ends[0], 1)).map((r) => r.unique),
      [3n],
    );
    fs.closeSync(fd);
  });
});
