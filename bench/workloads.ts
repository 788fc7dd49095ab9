/**
 * The workloads, run one at a time on one mounted stack. Each produces result rows (see `Row`).
 *
 * Groups (--workloads), in the order they run:
 *   main stack: seqread (cold, warm) · randread · find (cold, warm) · lsr · tar · smallfiles (create,
 *               delete) · copyup · seqwrite · mixed (ls -lR runs while another process writes and fsyncs)
 *   deep stack: deep (stat of hit and miss paths, then both again)
 *   no stack:   mounts (mount time and the memory of 20 mounts: bench/mounts.ts)
 * Mount and unmount latency and the daemon's peak RSS are recorded for every stack that is mounted.
 *
 * Invariants:
 * - Every measured command runs in a child process under a time limit (`Ctx.limitMs`): a hung or slow
 *   filesystem costs at most that long, and a walk or stream that is cut short still reports the rate it
 *   reached, marked `partial`.
 * - Around each measured command the daemon's CPU ticks, the machine's busy ticks and the count of cache
 *   drops are sampled, so each row says what the daemon spent and how busy everybody else was.
 * - "cold" = `sync; echo 3 > /proc/sys/vm/drop_caches` right before; "warm" runs right after its cold
 *   twin (the guest evicts idle page cache after ~30 s).
 * - A result that is wrong (wrong file count, failed stats, a lower file modified) is `error`, with the
 *   number kept and the reason in the note.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { DataSet } from "./data";
import { failure, ok, run, type RunResult } from "./exec";
import type { FsOps } from "./helper";
import {
  CLK_TCK,
  cpuTicks,
  dropCaches,
  dropCount,
  load1,
  machineBusyTicks,
  peakRssKiB,
  selfAndChildrenTicks,
} from "./proc";
import type { Mounted, SystemName } from "./systems";
import { isTarSystem, mountStack, unmountStack } from "./systems";

export const MAIN_GROUPS = [
  "seqread",
  "randread",
  "find",
  "lsr",
  "tar",
  "smallfiles",
  "copyup",
  "seqwrite",
  "mixed",
  "load",
  "roundtrip",
] as const;
export const ALL_GROUPS = [...MAIN_GROUPS, "deep", "mounts"] as const;
export type Group = (typeof ALL_GROUPS)[number];

export type Status = "ok" | "partial" | "timeout" | "error" | "skip";

export interface Row {
  system: SystemName;
  rep: number;
  workload: string;
  value: number | null;
  unit: string;
  status: Status;
  /** Seconds the measured command took (wall clock). */
  elapsed_s: number;
  /** Work done, in `per` units (files, MiB, stats…): the divisor for CPU per unit. */
  amount: number | null;
  per: string;
  /** utime + stime of the FUSE daemon (all threads) during the measured command. */
  daemon_cpu_s: number | null;
  /** CPUs kept busy on average by anything but the measured command, the daemon and the bench (≥ 0.5 s only). */
  other_cpu: number | null;
  /** drop_caches done by anybody during the measured command (the bench's own come before it). */
  foreign_drops: number | null;
  load1: number;
  note: string;
}

export interface Ctx {
  sys: SystemName;
  rep: number;
  data: DataSet;
  ops: FsOps;
  quick: boolean;
  /** Time limit for the next measured command; undefined when the run's time budget is used up. */
  limitMs(): number | undefined;
  emit(row: Row): void;
  log(s: string): void;
}

interface Sample {
  daemon_cpu_s: number | null;
  other_cpu: number | null;
  foreign_drops: number;
  load1: number;
}

/** Runs `fn` with the counters sampled before and after it. */
async function sampled<T>(m: Mounted, fn: () => Promise<T>): Promise<{ r: T; s: Sample; wall: number }> {
  const load = load1();
  const d0 = m.pid !== undefined ? cpuTicks(m.pid) : undefined;
  const busy0 = machineBusyTicks();
  const own0 = selfAndChildrenTicks();
  const drops0 = dropCount();
  const t0 = process.hrtime.bigint();
  const r = await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const d1 = m.pid !== undefined ? cpuTicks(m.pid) : undefined;
  const busy = machineBusyTicks() - busy0;
  const own = selfAndChildrenTicks() - own0;
  const daemon = d0 !== undefined && d1 !== undefined ? d1 - d0 : undefined;
  const other = wall >= 0.5 ? Math.max(0, (busy - own - (daemon ?? 0)) / CLK_TCK / wall) : null;
  return {
    r,
    wall,
    s: {
      daemon_cpu_s: daemon !== undefined ? daemon / CLK_TCK : null,
      other_cpu: other === null ? null : Math.round(other * 100) / 100,
      foreign_drops: dropCount() - drops0,
      load1: load,
    },
  };
}

interface Measured {
  workload: string;
  unit: string;
  per: string;
  value: number | null;
  amount: number | null;
  status: Status;
  elapsed: number;
  note?: string;
}

function emit(ctx: Ctx, x: Measured, s: Sample | null): void {
  ctx.emit({
    system: ctx.sys,
    rep: ctx.rep,
    workload: x.workload,
    value: x.value === null || !Number.isFinite(x.value) ? null : x.value,
    unit: x.unit,
    status: x.status,
    elapsed_s: Math.round(x.elapsed * 1e6) / 1e6,
    amount: x.amount,
    per: x.per,
    daemon_cpu_s: s?.daemon_cpu_s ?? null,
    other_cpu: s?.other_cpu ?? null,
    foreign_drops: s?.foreign_drops ?? null,
    load1: s?.load1 ?? load1(),
    note: (x.note ?? "").trim(),
  });
}

/** Records `workloads` as skipped (budget used up, mount failed, system missing…). */
export function skip(ctx: Ctx, workloads: readonly string[], note: string): void {
  for (const w of workloads) {
    emit(
      ctx,
      { workload: w, unit: "", per: "", value: null, amount: null, status: "skip", elapsed: 0, note },
      null,
    );
  }
}

/** The parallel load's eight loops: row, what the script prints, the unit of one iteration. */
const LOAD_LOOPS = [
  ["load_randread", "reads", "read"],
  ["load_untar", "untars", "extraction"],
  ["load_find", "finds", "find"],
  ["load_read", "readalls", "read-all"],
  ["load_copyup", "copyups", "copy-up"],
  ["load_rename", "renames", "create-rename-unlink"],
] as const;

/** Row names each group produces, per stack. */
export const ROWS: Record<Group, string[]> = {
  seqread: ["seqread_cold", "seqread_warm"],
  randread: ["randread_4k"],
  find: ["find_cold", "find_warm"],
  lsr: ["ls_lR"],
  tar: ["tar_cold"],
  smallfiles: ["create_4k", "delete_4k"],
  copyup: ["copyup_256m"],
  seqwrite: ["seqwrite_1g"],
  mixed: ["mixed_lsr", "mixed_fsync"],
  load: LOAD_LOOPS.map(([row]) => row),
  roundtrip: ["rt_stat_1", "rt_stat_2"],
  deep: ["deep_stat_hit", "deep_stat_miss", "deep_stat_hit_repeat", "deep_stat_miss_repeat"],
  mounts: [], // on no stack: bench/mounts.ts
};

const MiB = 1024 * 1024;

function statusOf(r: RunResult, complete: boolean): Status {
  if (r.timedOut) return "timeout";
  return ok(r) && complete ? "ok" : "error";
}

interface FsOpsOut {
  op: string;
  /** Operations tried (fewer than asked for when stopped at the deadline). */
  n: number;
  ok: number;
  fail: number;
  errno: number;
  seconds: number;
  stopped: number;
}

/** The loop deadline handed to fsops: a little under the kill limit, so a slow loop reports its rate. */
function loopSeconds(limitMs: number): string {
  return String(Math.max(1, limitMs / 1000 - 3));
}

function parseFsOps(r: RunResult): FsOpsOut | undefined {
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as FsOpsOut;
  } catch {
    return undefined;
  }
}

function fsops(ctx: Ctx, args: string[], limitMs: number): Promise<RunResult> {
  return run(ctx.ops.cmd, [...ctx.ops.pre, ...args], { timeoutMs: limitMs });
}

/** Runs one measured step unless the budget is used up (then its rows are skipped). */
async function step(ctx: Ctx, rows: string[], body: (limitMs: number) => Promise<void>): Promise<void> {
  const limit = ctx.limitMs();
  if (limit === undefined) {
    skip(ctx, rows, "run time budget used up");
    return;
  }
  try {
    await body(limit);
  } catch (err) {
    skip(ctx, rows, `bench error: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function coldNote(dropped: boolean): string {
  return dropped ? "" : "could not drop caches: not cold";
}

async function ddRead(ctx: Ctx, m: Mounted, workload: string, cold: boolean, limitMs: number): Promise<void> {
  const dropped = cold ? dropCaches() : true;
  const { r, s } = await sampled(m, () =>
    run("dd", [`if=${path.join(m.mnt, ctx.data.manifest.bigRel)}`, "of=/dev/null", "bs=1M"], {
      timeoutMs: limitMs,
      stopSignal: "SIGINT",
    }),
  );
  const bytes = Number(/^(\d+) bytes/m.exec(r.stderr)?.[1] ?? 0);
  const complete = bytes === ctx.data.manifest.bigBytes;
  let status = statusOf(r, complete);
  if (status === "timeout" && bytes > 0) status = "partial";
  const note = [
    coldNote(dropped),
    !complete && !r.timedOut ? `read ${bytes} bytes` : "",
    ok(r) ? "" : failure(r),
  ];
  emit(
    ctx,
    {
      workload,
      unit: "MiB/s",
      per: "MiB",
      value: bytes / MiB / r.elapsed,
      amount: bytes / MiB,
      status,
      elapsed: r.elapsed,
      note: note.join(" "),
    },
    s,
  );
}

async function catLower(ctx: Ctx, rel: string): Promise<void> {
  const lower = ctx.data.mainLayers.map((l) => path.join(l, rel)).find((p) => fs.existsSync(p));
  if (lower) await run("cat", [lower], { timeoutMs: 120_000, stdout: "ignore" });
}

async function randRead(ctx: Ctx, m: Mounted, limitMs: number, fio: boolean): Promise<void> {
  await catLower(ctx, ctx.data.manifest.bigRel);
  const seconds = ctx.quick ? 1 : 5;
  const file = path.join(m.mnt, ctx.data.manifest.bigRel);
  const limit = Math.min(limitMs, (seconds + 30) * 1000);
  if (fio) {
    const { r, s } = await sampled(m, () =>
      run(
        "fio",
        [
          "--name=randread",
          `--filename=${file}`,
          "--rw=randread",
          "--bs=4k",
          `--size=${ctx.data.manifest.bigBytes}`,
          "--ioengine=psync",
          "--iodepth=1",
          "--numjobs=1",
          `--runtime=${seconds}`,
          "--time_based",
          "--invalidate=0",
          "--readonly",
          "--output-format=json",
        ],
        { timeoutMs: limit },
      ),
    );
    let iops: number | null = null;
    let ios: number | null = null;
    try {
      const j = JSON.parse(r.stdout.slice(r.stdout.indexOf("{"))) as {
        jobs: { read: { iops: number; total_ios: number } }[];
      };
      iops = j.jobs[0]?.read.iops ?? null;
      ios = j.jobs[0]?.read.total_ios ?? null;
    } catch {
      // reported below
    }
    emit(
      ctx,
      {
        workload: "randread_4k",
        unit: "IOPS",
        per: "read",
        value: iops,
        amount: ios,
        status: statusOf(r, iops !== null),
        elapsed: r.elapsed,
        note: `fio psync ${seconds} s ${ok(r) ? "" : failure(r)}`,
      },
      s,
    );
    return;
  }
  const { r, s } = await sampled(m, () => fsops(ctx, ["randread", file, String(seconds), "4096"], limit));
  const o = parseFsOps(r);
  emit(
    ctx,
    {
      workload: "randread_4k",
      unit: "IOPS",
      per: "read",
      value: o ? o.ok / o.seconds : null,
      amount: o?.ok ?? null,
      status: statusOf(r, o !== undefined && o.fail === 0),
      elapsed: r.elapsed,
      note: `fsops loop (no fio) ${o && o.fail ? `${o.fail} failed, errno ${o.errno}` : ""} ${ok(r) ? "" : failure(r)}`,
    },
    s,
  );
}

async function walk(
  ctx: Ctx,
  m: Mounted,
  workload: "find_cold" | "find_warm" | "ls_lR",
  limitMs: number,
): Promise<void> {
  const man = ctx.data.manifest;
  const dropped = workload === "find_cold" ? dropCaches() : true;
  const isFind = workload !== "ls_lR";
  const { r, s } = await sampled(m, () =>
    isFind
      ? run("find", [m.mnt, "-type", "f"], { timeoutMs: limitMs, stdout: "count" })
      : run("ls", ["-lR", m.mnt], { timeoutMs: limitMs, stdout: "count" }),
  );
  // find prints one line per file. ls -lR prints one line per entry plus about three per directory
  // (blank line, "dir:", "total"); a cut-short listing is credited in that proportion.
  const expectLines = isFind ? man.files : man.entries + 3 * (man.dirs + 1);
  const done = isFind ? r.lines : Math.min(man.entries, (r.lines * man.entries) / expectLines);
  let status = statusOf(r, true);
  const notes = [coldNote(dropped)];
  if (r.timedOut && r.lines > 0) status = "partial";
  if (!r.timedOut && isFind && r.lines !== man.files) {
    status = "error";
    notes.push(`found ${r.lines} files, expected ${man.files}`);
  }
  if (!ok(r)) notes.push(failure(r));
  const per = isFind ? "file" : "entry";
  emit(
    ctx,
    {
      workload,
      unit: `${isFind ? "files" : "entries"}/s`,
      per,
      value: done / r.elapsed,
      amount: done,
      status,
      elapsed: r.elapsed,
      note: notes.join(" "),
    },
    s,
  );
}

async function tarCold(ctx: Ctx, m: Mounted, limitMs: number): Promise<void> {
  const dropped = dropCaches();
  // /dev/zero, not /dev/null: GNU tar skips reading file data when it writes to /dev/null.
  const { r, s } = await sampled(m, () =>
    run("tar", ["--totals", "--totals=SIGUSR1", "-C", m.mnt, "-cf", "/dev/zero", "."], {
      timeoutMs: limitMs,
      stopSignal: "SIGUSR1",
    }),
  );
  const all = [...r.stderr.matchAll(/Total bytes written: (\d+)/g)];
  const bytes = Number(all[all.length - 1]?.[1] ?? 0);
  let status = statusOf(r, bytes > 0);
  if (r.timedOut && bytes > 0) status = "partial";
  emit(
    ctx,
    {
      workload: "tar_cold",
      unit: "MiB/s",
      per: "MiB",
      value: bytes / MiB / r.elapsed,
      amount: bytes / MiB,
      status,
      elapsed: r.elapsed,
      note: `${coldNote(dropped)} ${ok(r) ? "" : failure(r)}`,
    },
    s,
  );
}

async function smallFiles(ctx: Ctx, m: Mounted, limitMs: number): Promise<void> {
  const n = ctx.quick ? 500 : 10_000;
  const dir = "bench-small";
  // Untimed round first, other names, same directory: after a cache drop the first few thousand creates
  // read inode tables from disk, which would otherwise dominate. Capped at a third of the time limit.
  const warmS = String(Math.max(1, limitMs / 3000));
  const warm = parseFsOps(
    await fsops(ctx, ["create", m.mnt, dir, String(n), "4096", "warm", warmS], limitMs),
  );
  await fsops(ctx, ["delete", m.mnt, dir, String(warm?.n ?? n), "warm", "0"], limitMs);
  let created = n;
  for (const workload of ["create_4k", "delete_4k"] as const) {
    const args =
      workload === "create_4k"
        ? ["create", m.mnt, dir, String(n), "4096", "f", loopSeconds(limitMs)]
        : ["delete", m.mnt, dir, String(created), "f", "1", loopSeconds(limitMs)];
    const { r, s } = await sampled(m, () => fsops(ctx, args, limitMs));
    const o = parseFsOps(r);
    if (workload === "create_4k" && o) created = o.n;
    let status = statusOf(r, o !== undefined && o.fail === 0 && !o.stopped);
    if (o?.stopped && o.fail === 0) status = "partial";
    const notes = [o?.fail ? `${o.fail} failed, first errno ${o.errno}` : "", ok(r) ? "" : failure(r)];
    if (o?.stopped)
      notes.push(`stopped at the time limit after ${o.n} of ${workload === "create_4k" ? n : created}`);
    emit(
      ctx,
      {
        workload,
        unit: "files/s",
        per: "file",
        value: o ? o.ok / o.seconds : null,
        amount: o?.ok ?? null,
        status,
        elapsed: o?.seconds ?? r.elapsed,
        note: notes.join(" "),
      },
      s,
    );
  }
}

async function copyUp(ctx: Ctx, m: Mounted, limitMs: number): Promise<void> {
  const man = ctx.data.manifest;
  await catLower(ctx, man.midRel);
  const target = path.join(m.mnt, man.midRel);
  const { r, s } = await sampled(m, () => fsops(ctx, ["append", target, "1"], limitMs));
  const o = parseFsOps(r);
  const notes: string[] = [];
  if (!o || o.fail) notes.push(`append failed, errno ${o?.errno}`);
  const st = await run("stat", ["-c", "%s", target], { timeoutMs: 30_000 });
  if (st.stdout.trim() !== String(man.midBytes + 1))
    notes.push(`merged size after append: ${st.stdout.trim()}`);
  if (!fs.existsSync(path.join(m.upper, man.midRel))) notes.push("no copy in the upper dir");
  const lower = path.join(ctx.data.mainDir, `layer${man.midLayer}`, man.midRel);
  if (fs.statSync(lower).size !== man.midBytes) notes.push("LOWER FILE MODIFIED");
  if (!ok(r)) notes.push(failure(r));
  emit(
    ctx,
    {
      workload: "copyup_256m",
      unit: "s",
      per: "copy-up",
      value: o && !o.fail ? o.seconds : null,
      amount: 1,
      status: statusOf(r, notes.length === 0),
      elapsed: o?.seconds ?? r.elapsed,
      note: notes.join("; "),
    },
    s,
  );
  await run("sync", [], { timeoutMs: 120_000 });
}

async function seqWrite(ctx: Ctx, m: Mounted, limitMs: number): Promise<void> {
  const man = ctx.data.manifest;
  const file = path.join(m.mnt, "bench-seqwrite.bin");
  const { r, s } = await sampled(m, () =>
    run("dd", ["if=/dev/zero", `of=${file}`, "bs=1M", `count=${man.bigBytes / MiB}`], {
      timeoutMs: limitMs,
      stopSignal: "SIGINT",
    }),
  );
  const bytes = Number(/^(\d+) bytes/m.exec(r.stderr)?.[1] ?? 0);
  const complete = bytes === man.bigBytes;
  let status = statusOf(r, complete);
  if (r.timedOut && bytes > 0) status = "partial";
  emit(
    ctx,
    {
      workload: "seqwrite_1g",
      unit: "MiB/s",
      per: "MiB",
      value: bytes / MiB / r.elapsed,
      amount: bytes / MiB,
      status,
      elapsed: r.elapsed,
      note: `${!complete && !r.timedOut ? `wrote ${bytes} bytes` : ""} ${ok(r) ? "" : failure(r)}`,
    },
    s,
  );
  await run("rm", ["-f", file], { timeoutMs: 60_000 });
  await run("sync", [], { timeoutMs: 120_000 });
}

/**
 * Two processes at once for MIXED_S seconds: one writes 32 MiB and fsyncs it, again and again (a
 * database's commits), the other lists usr/include with `ls -lR`, again and again. Rows: the listings
 * and the fsyncs done per second. A daemon that serves one request at a time makes the listing wait
 * for every fsync.
 */
async function mixed(ctx: Ctx, m: Mounted, limitMs: number): Promise<void> {
  const seconds = Math.min(ctx.quick ? 3 : 10, Math.max(1, Math.floor(limitMs / 2000)));
  const dir = path.join(m.mnt, "usr", "include");
  const file = path.join(m.mnt, "bench-mixed.bin");
  const script = [
    `end=$(( $(date +%s) + ${seconds} ))`,
    `( n=0; while [ "$(date +%s)" -lt "$end" ]; do dd if=/dev/zero of="$2" bs=1M count=32 conv=fsync status=none || exit 1; n=$((n+1)); done; echo "fsyncs $n" ) &`,
    `n=0; while [ "$(date +%s)" -lt "$end" ]; do ls -lR "$1" > /dev/null || exit 1; n=$((n+1)); done`,
    `wait $! || exit 1; echo "lists $n"`,
  ].join("\n");
  const { r, s } = await sampled(m, () =>
    run("bash", ["-c", script, "mixed", dir, file], { timeoutMs: limitMs }),
  );
  emitLoops(
    ctx,
    r,
    s,
    seconds,
    [
      ["mixed_lsr", "lists", "listing"],
      ["mixed_fsync", "fsyncs", "fsync"],
    ],
    () => "",
  );
  await run("rm", ["-f", file], { timeoutMs: 60_000 });
}

/**
 * The issue's parallel load, eight processes at once on the mount for LOAD_SECONDS: two random 4 KiB
 * readers of the big file (fsops randread), two loops extracting a tarball of `usr/include` into the
 * mount (then removing it), a `find` loop over `usr`, a loop reading every file of `usr/include`, a loop
 * of copy-ups (one byte appended to the next lower file of `usr` under 64 KiB) and a loop that creates, renames
 * and removes a file. Each row is its loop's iterations per second (the readers': reads per second).
 */
async function parallelLoad(ctx: Ctx, m: Mounted, limitMs: number): Promise<void> {
  const seconds = Math.min(ctx.quick ? 3 : 30, Math.max(1, Math.floor(limitMs / 2000)));
  const work = `${m.base}-load`;
  fs.mkdirSync(work, { recursive: true });
  const tarball = path.join(work, "include.tar");
  const list = path.join(work, "copyups.txt");
  await run("tar", ["-C", path.join(m.mnt, "usr"), "-cf", tarball, "include"], { timeoutMs: 120_000 });
  const found = await run("find", [path.join(m.mnt, "usr"), "-type", "f", "-size", "-64k"], {
    timeoutMs: 120_000,
  });
  fs.writeFileSync(list, found.stdout);
  const big = path.join(m.mnt, ctx.data.manifest.bigRel);
  const fsopsCmd = [ctx.ops.cmd, ...ctx.ops.pre].map((w) => `'${w}'`).join(" ");
  const loop = (name: string, body: string): string =>
    `( n=0; while [ "$(date +%s)" -lt "$end" ]; do ${body} || exit 1; n=$((n+1)); done; echo "${name} $n" ) & pids+=($!)`;
  const script = [
    `set -u; mnt="$1"; end=$(( $(date +%s) + ${seconds} )); pids=()`,
    `for i in 1 2; do ${fsopsCmd} randread "${big}" ${seconds} 4096 | sed -n 's/.*"ok":\\([0-9]*\\).*/reads \\1/p' & pids+=($!); done`,
    ...[1, 2].map((i) =>
      loop(
        "untars",
        `d="$mnt/load-untar-${i}"; mkdir -p "$d" && tar -C "$d" -xf "${tarball}" && rm -rf "$d"`,
      ),
    ),
    loop("finds", `find "$mnt/usr" > /dev/null`),
    loop("readalls", `find "$mnt/usr/include" -type f -exec cat {} + > /dev/null`),
    loop("copyups", `f=$(sed -n "$((n+1))p" "${list}"); if [ -z "$f" ]; then break; fi; echo x >> "$f"`),
    loop("renames", `echo x > "$mnt/load-r" && mv "$mnt/load-r" "$mnt/load-s" && rm "$mnt/load-s"`),
    'for p in "${pids[@]}"; do wait "$p" || exit 1; done',
  ].join("\n");
  const { r, s } = await sampled(m, () => run("bash", ["-c", script, "load", m.mnt], { timeoutMs: limitMs }));
  emitLoops(ctx, r, s, seconds, LOAD_LOOPS, (processes) => `${processes} process(es), ${seconds} s`);
  fs.rmSync(work, { recursive: true, force: true });
}

/**
 * One row per loop of a load script: its iterations per second over `seconds`, a loop's count being the
 * sum of the script's `WHAT N` lines for it (one per process running that loop).
 */
function emitLoops(
  ctx: Ctx,
  r: RunResult,
  s: Sample,
  seconds: number,
  loops: ReadonlyArray<readonly [workload: string, what: string, per: string]>,
  note: (processes: number) => string,
): void {
  for (const [workload, what, per] of loops) {
    const counts = [...r.stdout.matchAll(new RegExp(`^${what} (\\d+)$`, "gm"))].map((x) => Number(x[1]));
    const n = counts.length === 0 ? null : counts.reduce((a, b) => a + b, 0);
    emit(
      ctx,
      {
        workload,
        unit: `${per}s/s`,
        per,
        value: n === null ? null : n / seconds,
        amount: n,
        status: statusOf(r, n !== null),
        elapsed: seconds,
        note: ok(r) ? note(counts.length) : failure(r),
      },
      s,
    );
  }
}

/** Paths of up to `n` files of the mount, relative to it, one a line, in `file`. */
async function fileList(m: Mounted, file: string, n: number): Promise<number> {
  const r = await run("find", [".", "-type", "f"], { timeoutMs: 120_000, cwd: m.mnt });
  const names = r.stdout
    .split("\n")
    .filter((l) => l !== "")
    .slice(0, n);
  fs.writeFileSync(file, `${names.join("\n")}\n`);
  return names.length;
}

/**
 * Round trips: stat() of up to 10,000 files on a second mount of the same layers that caches nothing
 * (timeouts 0: a LOOKUP and a GETATTR per stat), by one process and by two at once. This is what
 * the transport costs per request (wake-ups included), not the union's work. Kernel overlayfs has no
 * timeout option: its rows are the dentry cache's.
 */
async function roundTrips(ctx: Ctx, m: Mounted, limitMs: number): Promise<void> {
  if (isTarSystem(ctx.sys)) {
    skip(ctx, ROWS.roundtrip, "measured on directory layers only");
    return;
  }
  const list = path.join(`${m.base}-rt.list`);
  const n = await fileList(m, list, ctx.quick ? 1000 : 10_000);
  let rt: Mounted;
  try {
    rt = await mountStack(ctx.sys, "main", ctx.data.mainLayers, `${m.base}-rt`, process.env, 30_000, true);
  } catch (err) {
    skip(ctx, ROWS.roundtrip, `mount failed: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  try {
    for (const clients of [1, 2]) {
      const { r, s } = await sampled(rt, () =>
        Promise.all(
          Array.from({ length: clients }, () =>
            fsops(ctx, ["stat", rt.mnt, list, loopSeconds(limitMs)], limitMs),
          ),
        ),
      );
      const outs = r.map(parseFsOps);
      const done = outs.every((o) => o !== undefined && o.ok === n && !o.stopped);
      const stats = outs.reduce((sum, o) => sum + (o?.n ?? 0), 0);
      const seconds = Math.max(...outs.map((o) => o?.seconds ?? 0));
      const failed = r.find((x) => !ok(x));
      emit(
        ctx,
        {
          workload: `rt_stat_${clients}`,
          unit: "stats/s",
          per: "stat",
          value: seconds > 0 ? stats / seconds : null,
          amount: stats,
          status: done && failed === undefined ? "ok" : "partial",
          elapsed: seconds,
          note: failed === undefined ? `${clients} process(es), ${n} files each` : failure(failed),
        },
        s,
      );
    }
  } finally {
    await unmountStack(rt);
    fs.rmSync(list, { force: true });
  }
}

/** All selected main-stack groups, in order. */
export async function runMain(ctx: Ctx, m: Mounted, groups: ReadonlySet<Group>, fio: boolean): Promise<void> {
  const want = (g: Group): boolean => groups.has(g);
  if (want("seqread")) {
    await step(ctx, ["seqread_cold"], (l) => ddRead(ctx, m, "seqread_cold", true, l));
    await step(ctx, ["seqread_warm"], (l) => ddRead(ctx, m, "seqread_warm", false, l));
  }
  if (want("randread")) await step(ctx, ROWS.randread, (l) => randRead(ctx, m, l, fio));
  if (want("find")) {
    await step(ctx, ["find_cold"], (l) => walk(ctx, m, "find_cold", l));
    await step(ctx, ["find_warm"], (l) => walk(ctx, m, "find_warm", l));
  }
  if (want("lsr")) await step(ctx, ROWS.lsr, (l) => walk(ctx, m, "ls_lR", l));
  if (want("tar")) await step(ctx, ROWS.tar, (l) => tarCold(ctx, m, l));
  if (want("smallfiles")) await step(ctx, ROWS.smallfiles, (l) => smallFiles(ctx, m, l));
  if (want("copyup")) await step(ctx, ROWS.copyup, (l) => copyUp(ctx, m, l));
  if (want("seqwrite")) await step(ctx, ROWS.seqwrite, (l) => seqWrite(ctx, m, l));
  if (want("mixed")) await step(ctx, ROWS.mixed, (l) => mixed(ctx, m, l));
  if (want("load")) await step(ctx, ROWS.load, (l) => parallelLoad(ctx, m, l));
  if (want("roundtrip")) await step(ctx, ROWS.roundtrip, (l) => roundTrips(ctx, m, l));
}

/** stat() of the hit and miss lists on the deep stack, twice. */
export async function runDeep(ctx: Ctx, m: Mounted): Promise<void> {
  // Lower directories into the dentry cache: the union's lookup cost is measured, not the disk's.
  await run("find", [ctx.data.deepDir], { timeoutMs: 120_000, stdout: "ignore" });
  const n = ctx.data.manifest.deepFiles;
  for (const pass of ["", "_repeat"]) {
    for (const list of ["hit", "miss"] as const) {
      const workload = `deep_stat_${list}${pass}`;
      await step(ctx, [workload], async (limitMs) => {
        const file = list === "hit" ? ctx.data.hitList : ctx.data.missList;
        const { r, s } = await sampled(m, () =>
          fsops(ctx, ["stat", m.mnt, file, loopSeconds(limitMs)], limitMs),
        );
        const o = parseFsOps(r);
        const notes: string[] = [];
        if (o && list === "hit" && o.ok !== o.n)
          notes.push(`only ${o.ok} of ${o.n} found (errno ${o.errno})`);
        if (o && list === "miss" && o.fail !== o.n) notes.push(`${o.ok} of ${o.n} missing paths exist`);
        if (o && list === "miss" && o.fail > 0 && o.errno !== 2) notes.push(`errno ${o.errno}, not ENOENT`);
        if (!ok(r)) notes.push(failure(r));
        let status = statusOf(r, o !== undefined && notes.length === 0);
        if (o?.stopped && status === "ok") {
          status = "partial";
          notes.push(`stopped at the time limit after ${o.n} of ${n}`);
        }
        emit(
          ctx,
          {
            workload,
            unit: "stats/s",
            per: "stat",
            value: o ? o.n / o.seconds : null,
            amount: o?.n ?? null,
            status,
            elapsed: o?.seconds ?? r.elapsed,
            note: notes.join("; "),
          },
          s,
        );
      });
    }
  }
}

/** mount_*, umount_* and rss_* rows of one stack. */
export function emitMount(ctx: Ctx, stack: string, seconds: number, info: string): void {
  emit(
    ctx,
    {
      workload: `mount_${stack}`,
      unit: "s",
      per: "mount",
      value: seconds,
      amount: 1,
      status: "ok",
      elapsed: seconds,
      note: info,
    },
    null,
  );
}

export function emitUmount(ctx: Ctx, stack: string, seconds: number, note: string): void {
  emit(
    ctx,
    {
      workload: `umount_${stack}`,
      unit: "s",
      per: "umount",
      value: seconds,
      amount: 1,
      status: note ? "error" : "ok",
      elapsed: seconds,
      note,
    },
    null,
  );
}

export function emitRss(ctx: Ctx, stack: string, m: Mounted): void {
  if (m.pid === undefined) return;
  const kib = peakRssKiB(m.pid);
  emit(
    ctx,
    {
      workload: `rss_${stack}`,
      unit: "MiB",
      per: "",
      value: kib === undefined ? null : kib / 1024,
      amount: null,
      status: kib === undefined ? "error" : "ok",
      elapsed: 0,
      note: "peak RSS (VmHWM) of the daemon",
    },
    null,
  );
}
