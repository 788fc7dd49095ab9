/**
 * Smoke test of the benchmark harness (`npm run bench -- --quick`): kernel overlayfs and unionfs-ts, two
 * cheap workloads on the small data set, in a private temp dir.
 *
 * Checks only that the harness works: it exits 0, results.json has a number for every measured row of
 * both systems (and the daemon's CPU time and peak RSS for unionfs-ts), the markdown table is there, and
 * nothing stays mounted or running. Speeds are never asserted: this machine is shared and noisy.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { forceUnmount, mountsUnder } from "../helpers/mounts";
import { makeTempDir, removeTree } from "../helpers/tmp";
import { cliBuilt, daemonPidsFor, killAndWait, newTag, TAG_VAR } from "../helpers/unionfs";

/** dist/test/integration/ → dist/bench/run.js */
const BENCH = path.resolve(__dirname, "..", "..", "bench", "run.js");
const RUN_DEADLINE_MS = 60_000;

interface BenchRow {
  system: string;
  workload: string;
  value: number | null;
  status: string;
  daemon_cpu_s: number | null;
  note: string;
}

function runBench(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BENCH, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    const timer = setTimeout(() => child.kill("SIGTERM"), RUN_DEADLINE_MS);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe("bench smoke: npm run bench -- --quick (kernel, unionfs-ts)", function () {
  this.timeout(RUN_DEADLINE_MS + 30_000);
  let root = "";
  const tag = newTag();

  before(function () {
    if (process.getuid?.() !== 0) this.skip();
    if (!cliBuilt() || !fs.existsSync(BENCH)) this.skip();
    if (!/\toverlay$/m.test(fs.readFileSync("/proc/filesystems", "utf8"))) this.skip();
    root = makeTempDir("bench-smoke");
  });

  after(async function () {
    if (!root) return;
    for (const m of mountsUnder(root).reverse()) forceUnmount(m.mountPoint);
    const pids = daemonPidsFor(tag);
    if (pids.length) await killAndWait(pids);
    removeTree(root);
  });

  it("measures both systems, writes JSON with numbers and leaves nothing mounted", async function () {
    const out = path.join(root, "out");
    // FUSE over io_uring too where the kernel has it (the bench turns its switch on and back off).
    const uring = fs.existsSync("/sys/module/fuse/parameters/enable_uring");
    const systems = ["kernel", "unionfs-ts", ...(uring ? ["unionfs-ts-uring"] : [])];
    const args = [
      "--quick",
      "--systems",
      systems.join(","),
      "--workloads",
      "lsr,smallfiles,mixed,roundtrip",
      "--no-prime",
      "--data",
      path.join(root, "data"),
      "--scratch",
      path.join(root, "scratch"),
      "--out",
      out,
      "--timeout",
      "15",
    ];
    const r = await runBench(args, { ...process.env, [TAG_VAR]: tag });
    assert.equal(r.code, 0, `bench exited ${r.code}:\n${r.stderr}`);

    assert.deepEqual(
      mountsUnder(root).map((m) => m.mountPoint),
      [],
      "the bench left mounts behind",
    );
    assert.deepEqual(daemonPidsFor(tag), [], "the bench left a daemon running");

    const res = JSON.parse(fs.readFileSync(path.join(out, "results.json"), "utf8")) as {
      rows: BenchRow[];
      meta: { left_mounted: string[] };
    };
    assert.deepEqual(res.meta.left_mounted, []);
    for (const system of systems) {
      const want = [
        "mount_main",
        "ls_lR",
        "create_4k",
        "delete_4k",
        "mixed_lsr",
        "mixed_fsync",
        "rt_stat_1",
        "rt_stat_2",
        "umount_main",
      ];
      if (system !== "kernel") want.push("rss_main");
      for (const workload of want) {
        const row = res.rows.find((x) => x.system === system && x.workload === workload);
        assert.ok(row, `no ${workload} row for ${system}`);
        assert.equal(row.status, "ok", `${system} ${workload}: ${row.status} ${row.note}`);
        assert.ok(
          typeof row.value === "number" && Number.isFinite(row.value) && row.value > 0,
          `${system} ${workload}: value ${row.value}`,
        );
      }
    }
    const cpu = res.rows.find((x) => x.system === "unionfs-ts" && x.workload === "ls_lR")?.daemon_cpu_s;
    assert.ok(typeof cpu === "number" && cpu >= 0, `daemon CPU of unionfs-ts: ${cpu}`);
    assert.equal(
      res.rows.find((x) => x.system === "kernel" && x.workload === "ls_lR")?.daemon_cpu_s,
      null,
      "kernel overlayfs has no daemon",
    );
    const md = fs.readFileSync(path.join(out, "results.md"), "utf8");
    assert.match(md, /\| ls_lR \| entries\/s ↑ \| [0-9.]+ \(1\.00\) .*\| [0-9.]+ \([0-9.]+\)/);
  });
});
