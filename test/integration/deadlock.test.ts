/**
 * No hang when the kernel waits on page locks while the daemon invalidates pages.
 *
 * Dropping a node's cached pages (page invalidation of a hard link's other names after a write) locks
 * each page; copy_file_range/splice and mmap writeback hold page locks while they wait for a READ or
 * WRITE reply. If the one serving thread sent that invalidation itself, it would wait on a task that
 * waits on it, and the mount would hang until aborted (seen with an fsstress-style load).
 *
 * Several processes at once: copy_file_range into one name of a hard-linked file, writes through the
 * other name (whose aliases are invalidated), mmap writes with msync, and link/unlink of the file. Each
 * worker is bounded in count and time; a hang is detected with a deadline, the connection is aborted (so
 * the stuck processes end) and the test fails.
 */
import { strict as assert } from "node:assert";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { abortConnection } from "../../src/fuse/control";
import { mountsAt } from "../helpers/mounts";
import { PYTHON, runChild, type ChildResult } from "../helpers/syscalls";
import { file } from "../helpers/tmp";
import { cliMount, useCleanup } from "../helpers/unionfs";

const MIB = 1 << 20;
const ROUNDS = 150;
const HANG_DEADLINE_MS = 45_000;

/** One worker's loop; argv: mountpoint, role, rounds. Stops after 15 s whatever the count. */
const WORKER = String.raw`
import os, sys, time, mmap
mp, role, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
MIB = 1 << 20
stop = time.time() + 15
for i in range(n):
    if time.time() > stop: break
    if role == "copy":
        src = os.open(mp + "/lower_src", os.O_RDONLY)
        dst = os.open(mp + "/h2", os.O_WRONLY)
        off_in, left = 0, MIB
        while left > 0:
            k = os.copy_file_range(src, dst, left, off_in, (i * 4096) % MIB)
            if k <= 0: break
            left -= k; off_in += k
        os.close(src); os.close(dst)
    elif role == "write":
        fd = os.open(mp + "/h1", os.O_WRONLY)
        os.pwrite(fd, b"x" * 8192, (i * 8192) % MIB)
        os.close(fd)
    elif role == "mmap":
        fd = os.open(mp + "/h2", os.O_RDWR)
        m = mmap.mmap(fd, MIB)
        m[(i * 4099) % MIB] = 65
        m.flush(); m.close(); os.close(fd)
    elif role == "link":
        name = mp + "/hl%d" % (i % 5)
        try: os.link(mp + "/h1", name)
        except FileExistsError: os.unlink(name)
print(role, "done")
`;

const ROLES = ["copy", "write", "mmap", "link", "copy", "write"];

/** Resolves with every worker's result, or rejects once the deadline passed (a hang). */
async function allWithin(workers: Promise<ChildResult>[], ms: number): Promise<ChildResult[]> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`workers still running after ${ms} ms: the mount hangs`)), ms);
  });
  try {
    return await Promise.race([Promise.all(workers), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe("no hang under concurrent copy_file_range, mmap writeback, writes and links", function () {
  this.timeout(120_000);
  const t = useCleanup();

  const variants = [
    { form: "U:L MP", passthrough: "auto" },
    { form: "U:L MP", passthrough: "off" },
    { form: "-o lowerdir=…", passthrough: "auto" },
  ];
  for (const { form, passthrough } of variants) {
    it(`regression: page invalidations never block the serving thread (${form}, passthrough=${passthrough})`, async function () {
      const root = t.tree({
        u: { h1: file(Buffer.alloc(MIB)) },
        l: { lower_src: file(randomBytes(2 * MIB)) },
        w: {},
        mp: {},
      });
      const [u, l, mp] = ["u", "l", "mp"].map((d) => path.join(root, d)) as [string, string, string];
      fs.linkSync(path.join(u, "h1"), path.join(u, "h2"));
      const lowerBefore = fs.readFileSync(path.join(l, "lower_src"));
      if (form === "U:L MP") await t.union(`${u}:${l}`, mp, { options: [`passthrough=${passthrough}`] });
      else await cliMount(t, ["-o", `lowerdir=${l},upperdir=${u},workdir=${path.join(root, "w")}`, mp], mp);
      const dev = mountsAt(mp)[0]?.dev;
      assert.ok(dev !== undefined, "mounted");
      const workers = ROLES.map((role) =>
        runChild(PYTHON, ["-c", WORKER, mp, role, String(ROUNDS)], { timeoutMs: HANG_DEADLINE_MS + 30_000 }),
      );
      let results: ChildResult[];
      try {
        results = await allWithin(workers, HANG_DEADLINE_MS);
      } catch (err) {
        abortConnection(dev); // the stuck processes get ENOTCONN and end
        await Promise.allSettled(workers);
        throw err;
      }
      results.forEach((r, i) => assert.equal(r.status, 0, `${ROLES[i]}: ${r.stderr}`));
      const st = await fs.promises.stat(path.join(mp, "h1"));
      assert.equal(st.nlink >= 2, true, "h1 and h2 are still one file");
      assert.ok(fs.readFileSync(path.join(l, "lower_src")).equals(lowerBefore), "lower branch unchanged");
    });
  }
});
