/**
 * The I/O threads (src/fuse/kernel/io-threads.ts, io-worker.ts) against a pipe standing in for
 * /dev/fuse: each job is done on duplicates of its descriptors, and exactly one reply is written with
 * its errno (and a READ's data); a READ finds no thread free while every thread is busy, an FSYNC
 * queues.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { IoThreads, readWouldWait, type IoJob } from "../../../src/fuse/kernel/io-threads";
import { setNonBlocking, sizedPipe } from "../../../src/sys/libc";
import { waitFor } from "../../helpers/mounts";

interface Got {
  len: number;
  error: number;
  unique: bigint;
  data: Buffer;
}

/** The replies read from `fd` until `count` came (header, then `len - 16` bytes of data). */
async function replies(fd: number, count: number): Promise<Got[]> {
  const out: Got[] = [];
  let pending = Buffer.alloc(0);
  const chunk = Buffer.alloc(1 << 20);
  await waitFor(
    () => {
      try {
        for (;;) {
          const n = fs.readSync(fd, chunk, 0, chunk.length, null);
          if (n === 0) break;
          pending = Buffer.concat([pending, chunk.subarray(0, n)]);
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      }
      while (pending.length >= 16 && pending.length >= pending.readUInt32LE(0)) {
        const len = pending.readUInt32LE(0);
        out.push({
          len,
          error: pending.readInt32LE(4),
          unique: pending.readBigUInt64LE(8),
          data: Buffer.from(pending.subarray(16, len)),
        });
        pending = pending.subarray(len);
      }
      return out.length >= count;
    },
    10_000,
    `${count} replies`,
  );
  return out;
}

describe("fuse/kernel/io-threads", function () {
  this.timeout(20_000);
  let dir: string;
  let ends: [number, number];
  let pool: IoThreads;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-io-"));
    const [r, w] = sizedPipe(4 << 20); // room for a whole large READ reply, as the device takes it
    setNonBlocking(r);
    ends = [r, w];
  });
  afterEach(() => {
    pool.close(10_000);
    ends.forEach((fd) => fs.closeSync(fd));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** take() until a thread runs and takes the job (the first calls start one and answer false). */
  async function handOver(job: IoJob): Promise<void> {
    await waitFor(() => pool.take(job), 10_000, "an I/O thread to take a job");
  }

  const fsyncJob = (fd: number, unique: bigint, datasync = false): IoJob => ({
    kind: "fsync",
    fd,
    reply: ends[1],
    unique,
    datasync,
  });

  it("answers each fsync once, with its errno, on a duplicate of the descriptor (the caller's stays open)", async () => {
    pool = new IoThreads(1, 300);
    const fd = fs.openSync(path.join(dir, "f"), "w");
    fs.writeSync(fd, "data");
    await handOver(fsyncJob(fd, 7n));
    assert.ok(pool.take(fsyncJob(fd, 8n, true)), "an fsync queues behind a busy thread");
    assert.ok(pool.take(fsyncJob(ends[0], 9n))); // fsync of a pipe: EINVAL
    const got = await replies(ends[0], 3);
    assert.deepEqual(
      got.map(({ len, error, unique }) => ({ len, error, unique })),
      [
        { len: 16, error: 0, unique: 7n },
        { len: 16, error: 0, unique: 8n },
        { len: 16, error: -os.constants.errno.EINVAL, unique: 9n },
      ],
    );
    assert.equal(fs.fstatSync(fd).size, 4, "the caller's descriptor is still open");
    fs.closeSync(fd);
  });

  it("answers a read with the file's bytes, short at its end, spliced or copied, and a failed read with its errno", async () => {
    pool = new IoThreads(1, 300);
    const bytes = Buffer.alloc(300_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    const file = path.join(dir, "r");
    fs.writeFileSync(file, bytes);
    const fd = fs.openSync(file, "r");
    const read = (unique: bigint, offset: number, size: number, from = fd): IoJob => ({
      kind: "read",
      fd: from,
      reply: ends[1],
      unique,
      offset: BigInt(offset),
      size,
    });
    const asked: Array<[number, number]> = [
      [0, 4096], // small: copied
      [4096, 131_072], // large: spliced
      [250_000, 131_072], // past the end: short
    ];
    for (const [i, [offset, size]] of asked.entries()) {
      await handOver(read(BigInt(i + 1), offset, size));
      const [got] = await replies(ends[0], 1);
      assert.equal(got?.unique, BigInt(i + 1));
      assert.equal(got?.error, 0);
      assert.ok(got?.data.equals(bytes.subarray(offset, offset + size)), `bytes of read ${i + 1}`);
    }
    const dirFd = fs.openSync(dir, "r");
    await handOver(read(9n, 0, 4096, dirFd));
    const [failed] = await replies(ends[0], 1);
    assert.deepEqual([failed?.unique, failed?.error, failed?.len], [9n, -os.constants.errno.EISDIR, 16]);
    fs.closeSync(dirFd);
    fs.closeSync(fd);
  });

  it("does a read inline while every thread is busy (an fsync queues), and starts threads up to its limit", async () => {
    const saved = process.env.UNIONFS_TS_SYNC_DELAY_MS;
    process.env.UNIONFS_TS_SYNC_DELAY_MS = "1500"; // read by each thread as it starts: a slow disk
    try {
      pool = new IoThreads(2, 300);
      const fd = fs.openSync(path.join(dir, "f"), "w");
      const readJob: IoJob = { kind: "read", fd, reply: ends[1], unique: 5n, offset: 0n, size: 4096 };
      await handOver(fsyncJob(fd, 1n)); // one thread, busy for 1.5 s
      await waitFor(
        () => pool.running === 2 || (pool.take(readJob) && assert.fail("a busy thread took a read")),
        10_000,
        "a second thread",
      );
      await handOver(fsyncJob(fd, 2n)); // the second, busy too
      assert.equal(pool.take(readJob), false, "no thread free: the read is done inline");
      assert.equal(pool.running, 2, "no third thread");
      assert.ok(pool.take(fsyncJob(fd, 3n)), "an fsync queues behind a busy thread");
      const got = await replies(ends[0], 3);
      assert.deepEqual(got.map((r) => r.unique).sort(), [1n, 2n, 3n]);
      fs.closeSync(fd);
    } finally {
      if (saved === undefined) delete process.env.UNIONFS_TS_SYNC_DELAY_MS;
      else process.env.UNIONFS_TS_SYNC_DELAY_MS = saved;
    }
  });

  it("readWouldWait: a read of pages not all in the page cache would wait, one of cached pages would not", () => {
    pool = new IoThreads(1, 300);
    const file = path.join(dir, "c");
    fs.writeFileSync(file, Buffer.alloc(4 << 20, 1));
    const fd = fs.openSync(file, "r");
    fs.fsyncSync(fd);
    assert.equal(readWouldWait(fd, 0n, 65_536), false, "just written: cached");
    const dd = spawnSync("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
    assert.equal(dd.status, 0, dd.stderr.toString());
    assert.equal(readWouldWait(fd, 0n, 65_536), true, "dropped from the cache");
    fs.readSync(fd, Buffer.alloc(65_536), 0, 65_536, 0);
    assert.equal(readWouldWait(fd, 0n, 65_536), false, "read once: cached again");
    assert.equal(readWouldWait(fd, 2n << 20n, 65_536), true, "pages far from those read: still not cached");
    fs.closeSync(fd);
  });

  it("ends idle threads, and the next job starts one again", async () => {
    pool = new IoThreads(1, 300);
    const fd = fs.openSync(path.join(dir, "f"), "w");
    await handOver(fsyncJob(fd, 1n));
    await replies(ends[0], 1);
    await waitFor(() => pool.running === 0, 10_000, "the idle thread to end");
    assert.equal(pool.take(fsyncJob(fd, 2n)), false, "done inline while a new thread starts");
    await handOver(fsyncJob(fd, 3n));
    assert.deepEqual(
      (await replies(ends[0], 1)).map((r) => r.unique),
      [3n],
    );
    fs.closeSync(fd);
  });
});
