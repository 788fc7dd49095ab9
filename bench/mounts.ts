/**
 * The `mounts` group: what a mount costs a host that mounts often and many times (a container engine),
 * measured outside any stack:
 *
 *   mount_1layer               median of 5: process start until the root of a fresh 1-layer mount (a
 *                              new upper over one lower) answers a stat; each daemon runs in the
 *                              background, as an engine starts it (`unionfs-ts mount`, `fuse-overlayfs`
 *                              and `unionfs` without -f)
 *   mount_1layer_shared        unionfs-ts with -o shared, its server already serving another mount
 *   mount_1layer_shared_cold   the same with no server running (each mount starts one)
 *   pss_20mounts               20 mounts of a copy of /usr/include (each its own upper), each after a
 *                              `find`: the PSS of their daemons, summed (smaps_rollup)
 *   pss_20mounts_shared        the same with -o shared: the one server's PSS
 *
 * Invariants: every mount made here is unmounted before the function returns, or by
 * `cleanupMountsSync` when the bench is interrupted; a daemon is only ever found through its pid file
 * (unionfs-ts) or its command line naming our mountpoint, and none is signalled (they end with their
 * mounts). The shared server runs on a socket directory of the bench's own (UNIONFS_TS_SOCKET_DIR).
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { run, sleep } from "./exec";
import { alive, mountAt, load1 } from "./proc";
import { CLI, type SystemName } from "./systems";
import { skip, type Ctx, type Row } from "./workloads";

export const MOUNT_ROWS = [
  "mount_1layer",
  "mount_1layer_shared",
  "mount_1layer_shared_cold",
  "pss_20mounts",
  "pss_20mounts_shared",
];

const made = new Set<string>();
const DEADLINE_MS = 30_000;

type Variant = "plain" | "shared";

interface One {
  mnt: string;
  upper: string;
  work: string;
  pidFile: string;
}

function fresh(base: string, name: string): One {
  const dir = path.join(base, name);
  fs.rmSync(dir, { recursive: true, force: true });
  const one = {
    mnt: path.join(dir, "mnt"),
    upper: path.join(dir, "upper"),
    work: path.join(dir, "work"),
    pidFile: path.join(dir, "pid"),
  };
  for (const d of [one.mnt, one.upper, one.work]) fs.mkdirSync(d, { recursive: true });
  return one;
}

function command(sys: SystemName, v: Variant, lower: string, o: One): [string, string[]] {
  switch (sys) {
    case "kernel":
      return [
        "mount",
        ["-t", "overlay", "overlay", "-o", `lowerdir=${lower},upperdir=${o.upper},workdir=${o.work}`, o.mnt],
      ];
    case "fuse-overlayfs":
      return ["fuse-overlayfs", ["-o", `lowerdir=${lower},upperdir=${o.upper},workdir=${o.work}`, o.mnt]];
    case "unionfs-fuse":
      return ["unionfs", ["-o", "cow,allow_other", `${o.upper}=RW:${lower}=RO`, o.mnt]];
    default: {
      const opts = v === "shared" ? `shared,pidfile=${o.pidFile}` : `pidfile=${o.pidFile}`;
      return [process.execPath, [CLI, "mount", "-o", opts, `${o.upper}:${lower}`, o.mnt]];
    }
  }
}

/** Runs the mount command to its exit (a daemon it leaves has none of our stdio). */
function exitOf(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], env });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), DEADLINE_MS);
    child.on("error", (e) => resolve(e.message));
    child.on("exit", (code, sig) => {
      clearTimeout(timer);
      resolve(code === 0 ? undefined : `${cmd} exited ${code ?? sig}: ${err.trim().split("\n").pop() ?? ""}`);
    });
  });
}

/** Mounts `o` and returns the seconds until its root answered. */
async function mountOne(sys: SystemName, v: Variant, lower: string, o: One, env: NodeJS.ProcessEnv) {
  const [cmd, args] = command(sys, v, lower, o);
  made.add(o.mnt);
  const t0 = process.hrtime.bigint();
  const failed = await exitOf(cmd, args, env);
  if (failed !== undefined) throw new Error(failed);
  fs.statSync(o.mnt);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (mountAt(o.mnt) === undefined) throw new Error(`${o.mnt} is not mounted after ${cmd} exited 0`);
  return seconds;
}

/** The pids serving `o`: its pid file's, else processes whose command line names its mountpoint. */
function daemonsOf(o: One): number[] {
  if (fs.existsSync(o.pidFile)) return [Number(fs.readFileSync(o.pidFile, "utf8"))];
  return fs
    .readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(o.mnt);
      } catch {
        return false;
      }
    });
}

function pssMiB(pids: Iterable<number>): number {
  let kib = 0;
  for (const pid of pids) {
    const m = /^Pss:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    kib += Number(m?.[1] ?? 0);
  }
  return kib / 1024;
}

/** Unmounts `o` and waits until its daemons are gone (so the next mount starts from the same state). */
async function unmountOne(o: One): Promise<void> {
  const pids = daemonsOf(o);
  if (mountAt(o.mnt) !== undefined) spawnSync("umount", [o.mnt], { stdio: "ignore", timeout: 20_000 });
  if (mountAt(o.mnt) !== undefined) spawnSync("umount", ["-l", o.mnt], { stdio: "ignore", timeout: 20_000 });
  if (mountAt(o.mnt) === undefined) made.delete(o.mnt);
  const end = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < end) await sleep(10);
}

/** Last-resort cleanup (exit, signal, crash): unmounts whatever this group still has mounted. */
export function cleanupMountsSync(): void {
  for (const mnt of made) {
    if (mountAt(mnt) !== undefined) spawnSync("umount", [mnt], { stdio: "ignore", timeout: 10_000 });
    if (mountAt(mnt) !== undefined) spawnSync("umount", ["-l", mnt], { stdio: "ignore", timeout: 10_000 });
    if (mountAt(mnt) === undefined) made.delete(mnt);
  }
}

function row(ctx: Ctx, workload: string, value: number | null, unit: string, note: string): void {
  const r: Row = {
    system: ctx.sys,
    rep: ctx.rep,
    workload,
    value,
    unit,
    status: value === null ? "error" : "ok",
    elapsed_s: 0,
    amount: null,
    per: unit === "s" ? "mount" : "",
    daemon_cpu_s: null,
    other_cpu: null,
    foreign_drops: null,
    load1: load1(),
    note,
  };
  ctx.emit(r);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function mountTimes(ctx: Ctx, v: Variant, lower: string, base: string, env: NodeJS.ProcessEnv) {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const o = fresh(base, `m${i}`);
    try {
      times.push(await mountOne(ctx.sys, v, lower, o, env));
    } finally {
      await unmountOne(o);
    }
  }
  return times;
}

async function pss20(ctx: Ctx, v: Variant, lower: string, base: string, env: NodeJS.ProcessEnv, n: number) {
  const all: One[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const o = fresh(base, `p${i}`);
      all.push(o);
      await mountOne(ctx.sys, v, lower, o, env);
    }
    for (const o of all) await run("find", [o.mnt], { timeoutMs: 60_000, stdout: "count" });
    return pssMiB(new Set(all.flatMap(daemonsOf)));
  } finally {
    for (const o of all) await unmountOne(o);
  }
}

const fmt = (xs: number[]): string => `runs ${xs.map((x) => (x * 1000).toFixed(0)).join(", ")} ms`;

/** The rows of one variant; a failure becomes an error row with the reason. */
async function measure(ctx: Ctx, name: string, unit: string, fn: () => Promise<{ v: number; note: string }>) {
  try {
    const r = await fn();
    row(ctx, name, r.v, unit, r.note);
  } catch (err) {
    row(ctx, name, null, unit, err instanceof Error ? err.message : String(err));
  }
}

export async function runMounts(ctx: Ctx, scratch: string): Promise<void> {
  if (ctx.limitMs() === undefined) {
    skip(
      ctx,
      ctx.sys === "unionfs-ts" ? MOUNT_ROWS : ["mount_1layer", "pss_20mounts"],
      "time budget used up",
    );
    return;
  }
  const base = path.join(scratch, `${ctx.sys}-r${ctx.rep}-mounts`);
  const lower = path.join(scratch, "usr-include");
  if (!fs.existsSync(lower)) await run("cp", ["-a", "/usr/include", lower], { timeoutMs: 120_000 });
  const n = ctx.quick ? 3 : 20;
  const sockDir = path.join(scratch, "sock");
  fs.mkdirSync(sockDir, { recursive: true, mode: 0o700 });
  const env = { ...process.env, UNIONFS_TS_SOCKET_DIR: sockDir };
  const first = fresh(base, "one");
  const layer = path.join(base, "layer");
  fs.mkdirSync(layer);
  fs.writeFileSync(path.join(layer, "f"), "f\n");
  await measure(ctx, "mount_1layer", "s", async () => {
    const t = await mountTimes(ctx, "plain", layer, base, env);
    return { v: median(t), note: fmt(t) };
  });
  if (ctx.sys !== "kernel") {
    await measure(ctx, "pss_20mounts", "MiB", async () => ({
      v: await pss20(ctx, "plain", lower, base, env, n),
      note: `${n} mounts of a copy of /usr/include, each after a find`,
    }));
  }
  if (ctx.sys !== "unionfs-ts") return;
  await measure(ctx, "mount_1layer_shared_cold", "s", async () => {
    const t = await mountTimes(ctx, "shared", layer, base, env);
    return { v: median(t), note: `${fmt(t)}; each starts the server` };
  });
  await measure(ctx, "pss_20mounts_shared", "MiB", async () => ({
    v: await pss20(ctx, "shared", lower, base, env, n),
    note: `${n} mounts in one process, each after a find`,
  }));
  try {
    await mountOne(ctx.sys, "shared", layer, first, env); // keeps the server up
    await measure(ctx, "mount_1layer_shared", "s", async () => {
      const t = await mountTimes(ctx, "shared", layer, base, env);
      return { v: median(t), note: `${fmt(t)}; the server already serves a mount` };
    });
  } finally {
    await unmountOne(first);
  }
  fs.rmSync(base, { recursive: true, force: true });
}
