#!/usr/bin/env node
/**
 * `npm run bench`: measures unionfs-ts against kernel overlayfs, fuse-overlayfs and unionfs-fuse on the
 * same layers, in one run. See bench/README.md.
 *
 * Invariants:
 * - Nothing is left mounted: every mount is registered and taken down on success, on error, on SIGINT,
 *   SIGTERM and SIGHUP, and on exit; the run fails (exit 1) if a mount under its scratch dir survived.
 * - Kernel overlayfs runs first in every rep: it is the reference every ratio is taken against.
 * - Every system gets a fresh mount and fresh, empty upper and work dirs, per stack and per rep; lower
 *   layers are only read, and after each system they are checked for modification.
 * - The run is bounded: each workload has a time limit, the whole run a budget after which the remaining
 *   workloads are recorded as skipped.
 * - Rows are appended to OUT/rows.jsonl as they are measured; results.json and results.md are written
 *   at the end, and the markdown table is printed on stdout (progress goes to stderr).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FULL, mainArchives, prepareData, QUICK, type DataSet } from "./data";
import { killRunningChildren, run } from "./exec";
import { findFsOps, type FsOps } from "./helper";
import { parseOptions, USAGE, UsageError, type Options } from "./options";
import { cleanupMountsSync, MOUNT_ROWS, runMounts } from "./mounts";
import { load1, mountsUnder } from "./proc";
import { markdown, summarize } from "./report";
import {
  cleanupSync,
  isTarSystem,
  mountStack,
  setBaseline,
  tarSystem,
  stillMounted,
  unavailable,
  unmountStack,
  versions,
  type Mounted,
  type SystemName,
} from "./systems";
import {
  emitMount,
  emitRss,
  emitUmount,
  MAIN_GROUPS,
  ROWS,
  runDeep,
  runMain,
  skip,
  type Ctx,
  type Group,
  type Row,
} from "./workloads";

const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** The scratch dir this run made itself (deleted at the end, even when interrupted). */
let ownScratch: string | undefined;

function removeOwnScratch(): void {
  if (ownScratch && mountsUnder(ownScratch).length === 0)
    fs.rmSync(ownScratch, { recursive: true, force: true });
}

function installCleanup(): void {
  const bail = (why: string, code: number): void => {
    log(`bench: ${why}; unmounting everything it mounted`);
    killRunningChildren();
    cleanupSync();
    cleanupMountsSync();
    removeOwnScratch();
    process.exit(code);
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => bail(`got ${sig}`, 130));
  process.on("uncaughtException", (err) => bail(`crashed: ${err.stack ?? String(err)}`, 1));
  process.on("exit", () => {
    killRunningChildren();
    cleanupSync();
    cleanupMountsSync();
  });
}

/** The systems the mounts group measures (the unionfs-ts variants differ only once mounted). */
const MOUNT_SYSTEMS = new Set<SystemName>(["kernel", "unionfs-ts", "fuse-overlayfs", "unionfs-fuse"]);

/** Row names of the selected groups on one stack, with the mount rows first. */
function rowNames(stack: "main" | "deep", groups: readonly Group[], sys: SystemName): string[] {
  const daemon = sys === "kernel" ? [] : [`rss_${stack}`];
  const g = stack === "main" ? groups.filter((x) => x !== "deep") : groups.filter((x) => x === "deep");
  const indexed = stack === "main" && isTarSystem(sys) ? ["mount_main_indexed"] : [];
  return [`mount_${stack}`, ...indexed, ...g.flatMap((x) => ROWS[x]), `umount_${stack}`, ...daemon];
}

/** Every row name the run can produce, in table order. */
function tableOrder(groups: readonly Group[]): string[] {
  const main = groups.some((g) => g !== "deep");
  const deep = groups.includes("deep");
  return [
    ...(main
      ? ["mount_main", "mount_main_indexed", ...groups.filter((g) => g !== "deep").flatMap((g) => ROWS[g])]
      : []),
    ...(deep ? ["mount_deep", ...ROWS.deep] : []),
    ...(main ? ["umount_main"] : []),
    ...(deep ? ["umount_deep"] : []),
    ...(main ? ["rss_main"] : []),
    ...(deep ? ["rss_deep"] : []),
    ...(groups.includes("mounts") ? MOUNT_ROWS : []),
  ];
}

async function runStack(
  ctx: Ctx,
  stack: "main" | "deep",
  data: DataSet,
  o: Options,
  scratch: string,
  fio: boolean,
): Promise<void> {
  const tar = tarSystem(ctx.sys);
  if (tar !== undefined && stack === "deep") {
    skip(ctx, rowNames(stack, o.groups, ctx.sys), "tar layers are measured on the main stack only");
    return;
  }
  const lowers =
    stack === "deep" ? data.deepLayers : tar ? mainArchives(data, tar.gzip, ctx.log) : data.mainLayers;
  const base = path.join(scratch, `${ctx.sys}-r${ctx.rep}-${stack}`);
  // The first mount of archives builds their indexes (none is kept from an earlier run): mount_main.
  if (tar) for (const a of lowers) fs.rmSync(`${a}.unionfs-index`, { force: true });
  let m: Mounted;
  try {
    m = await mountStack(ctx.sys, stack, lowers, base, process.env);
  } catch (err) {
    skip(
      ctx,
      rowNames(stack, o.groups, ctx.sys),
      `mount failed: ${err instanceof Error ? err.message : String(err)}`,
    );
    return;
  }
  emitMount(ctx, stack, m.mountSeconds, m.info);
  try {
    if (stack === "main") {
      const big = path.join(m.mnt, data.manifest.bigRel);
      const st = await run("stat", ["-c", "%s", big], { timeoutMs: 30_000 });
      if (st.stdout.trim() !== String(data.manifest.bigBytes)) {
        const names = rowNames(stack, o.groups, ctx.sys).filter((w) => !/^(mount|umount|rss)_/.test(w));
        skip(ctx, names, `merged view is wrong: ${data.manifest.bigRel} size '${st.stdout.trim()}'`);
      } else {
        await runMain(ctx, m, new Set(o.groups), fio);
      }
    } else {
      await runDeep(ctx, m);
    }
    emitRss(ctx, stack, m);
  } finally {
    const u = await unmountStack(m);
    emitUmount(ctx, stack, u.seconds, u.note);
  }
  if (tar) await indexedMount(ctx, lowers, base);
}

/** A second mount of the same archives, with the indexes the first one saved: mount_main_indexed. */
async function indexedMount(ctx: Ctx, lowers: readonly string[], base: string): Promise<void> {
  let again: Mounted;
  try {
    again = await mountStack(ctx.sys, "main", lowers, `${base}-indexed`, process.env);
  } catch (err) {
    skip(ctx, ["mount_main_indexed"], `mount failed: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  emitMount(ctx, "main_indexed", again.mountSeconds, again.info);
  await unmountStack(again);
}

/** Any layer entry whose mtime or ctime is newer than the data set: a system wrote into a lower layer. */
async function checkLowers(ctx: Ctx, data: DataSet): Promise<void> {
  const r = await run(
    "find",
    [
      data.mainDir,
      data.deepDir,
      "-mindepth",
      "1",
      "(",
      "-newer",
      data.stamp,
      "-o",
      "-cnewer",
      data.stamp,
      ")",
    ],
    { timeoutMs: 120_000 },
  );
  const changed = r.stdout.split("\n").filter((l) => l !== "");
  if (changed.length === 0) return;
  log(`WARNING: ${ctx.sys} modified the lower layers; rebuild them with --force`);
  ctx.emit({
    system: ctx.sys,
    rep: ctx.rep,
    workload: "lower_layers_modified",
    value: changed.length,
    unit: "entries",
    status: "error",
    elapsed_s: 0,
    amount: null,
    per: "",
    daemon_cpu_s: null,
    other_cpu: null,
    foreign_drops: null,
    load1: load1(),
    note: changed.slice(0, 5).join(" "),
  });
}

async function main(argv: string[]): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    log(`bench: ${err.message}\n${USAGE}`);
    return 2;
  }
  if (o.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    log("bench: must run as root (it mounts filesystems and drops caches)");
    return 2;
  }
  if (o.baseline !== undefined) setBaseline(o.baseline);
  installCleanup();
  const started = new Date();
  const t0 = Date.now();
  const budgetEnd = t0 + o.budgetS * 1000;

  const data = await prepareData(o.data, o.quick ? QUICK : FULL, o.force, log);
  const ops: FsOps = findFsOps();
  const ver = versions();
  const fio = ver.fio !== null;
  fs.mkdirSync(o.out, { recursive: true });
  if (!o.scratch) ownScratch = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-ts-bench-"));
  const scratch = o.scratch ?? (ownScratch as string);
  fs.mkdirSync(scratch, { recursive: true });
  const rowsFile = path.join(o.out, "rows.jsonl");
  fs.writeFileSync(rowsFile, "");
  const rows: Row[] = [];
  const systems: SystemName[] = [
    ...o.systems.filter((s) => s === "kernel"),
    ...o.systems.filter((s) => s !== "kernel"),
  ];
  log(
    `bench: ${systems.join(", ")}; ${o.groups.join(", ")}; ${o.reps} rep(s)${o.quick ? ", quick" : ""}; ` +
      `helper: ${ops.kind}${fio ? ", fio" : ", no fio"}; results -> ${o.out}`,
  );
  const loadStart = fs.readFileSync("/proc/loadavg", "utf8").trim();

  if (o.prime) {
    // "Cold" means cold in this VM's page cache; the host may still cache its virtual disk. Reading
    // everything once first gives every system the same host-side state.
    log("[prime] reading the data set once");
    await run("tar", ["-C", data.root, "-cf", "/dev/zero", "main", "deep"], { timeoutMs: 300_000 });
  }

  const wantMain = o.groups.some((g) => (MAIN_GROUPS as readonly string[]).includes(g));
  const wantDeep = o.groups.includes("deep");
  const wantMounts = o.groups.includes("mounts");
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const sys of systems) {
      log(`== ${sys} (rep ${rep}/${o.reps}) ==`);
      const ctx: Ctx = {
        sys,
        rep,
        data,
        ops,
        quick: o.quick,
        limitMs: () => {
          const left = budgetEnd - Date.now();
          return left < 2000 ? undefined : Math.min(o.timeoutS * 1000, left);
        },
        emit: (row) => {
          rows.push(row);
          fs.appendFileSync(rowsFile, `${JSON.stringify(row)}\n`);
          const v = row.value === null ? "" : row.value.toPrecision(4);
          const cpu = row.daemon_cpu_s === null ? "" : ` cpu ${row.daemon_cpu_s.toFixed(2)}s`;
          log(
            `  ${row.workload.padEnd(22)} ${v.padStart(10)} ${row.unit.padEnd(10)} ${row.status.padEnd(7)}` +
              ` ${row.elapsed_s.toFixed(2)}s${cpu}${row.other_cpu !== null ? ` other ${row.other_cpu}` : ""}` +
              `${row.note ? `  ${row.note}` : ""}`,
          );
        },
        log,
      };
      const why = unavailable(sys);
      if (why) {
        if (wantMain) skip(ctx, rowNames("main", o.groups, sys), why);
        if (wantDeep) skip(ctx, rowNames("deep", o.groups, sys), why);
        if (wantMounts && MOUNT_SYSTEMS.has(sys)) skip(ctx, ["mount_1layer", "pss_20mounts"], why);
        continue;
      }
      if (wantMain) await runStack(ctx, "main", data, o, scratch, fio);
      if (wantDeep) await runStack(ctx, "deep", data, o, scratch, fio);
      if (wantMounts && MOUNT_SYSTEMS.has(sys)) await runMounts(ctx, scratch);
      await checkLowers(ctx, data);
    }
  }

  const leftover = [...stillMounted(), ...mountsUnder(scratch)];
  const order = [...tableOrder(o.groups), "lower_layers_modified"];
  const cells = summarize(rows, systems, order);
  const seconds = (Date.now() - t0) / 1000;
  const meta = {
    started: started.toISOString(),
    seconds,
    options: { ...o, systems, groups: o.groups },
    host: {
      kernel: os.release(),
      cpus: os.cpus().length,
      mem_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
    },
    versions: ver,
    fsops: ops.kind,
    data: {
      root: data.root,
      ...data.manifest,
      deepStack: `upper + ${data.manifest.deepLayers} lower layers`,
    },
    loadavg_start: loadStart,
    loadavg_end: fs.readFileSync("/proc/loadavg", "utf8").trim(),
    left_mounted: leftover,
  };
  const title =
    `unionfs-ts bench, ${started.toISOString().slice(0, 16).replace("T", " ")}, ` +
    `${os.release()}, ${os.cpus().length} CPUs, ${o.reps} rep(s)${o.quick ? ", QUICK (not a measurement)" : ""}`;
  const md = markdown(cells, systems, order, title);
  fs.writeFileSync(
    path.join(o.out, "results.json"),
    `${JSON.stringify({ meta, summary: cells, rows }, null, 2)}\n`,
  );
  fs.writeFileSync(path.join(o.out, "results.md"), md);
  process.stdout.write(md);
  log(`bench: ${seconds.toFixed(0)} s; results in ${o.out}/results.{json,md}`);
  if (leftover.length) {
    log(`bench: ERROR: still mounted: ${leftover.join(", ")}`);
    return 1;
  }
  removeOwnScratch();
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      log(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exitCode = 1;
    },
  );
}
