/**
 * Mounting and unmounting the systems under test, each over the same lower layers with a fresh, empty
 * upper (and work) dir of its own.
 *
 *   kernel          mount -t overlay (kernel defaults; lowerdirs relative, so 128 fit in one page)
 *   unionfs-ts      node dist/src/cli/main.js mount -f UPPER:L1:…:Ln MNT   (this repository)
 *   unionfs-ts-ptlower  the same with -o passthrough=lower
 *   unionfs-ts-uring    the same with -o io_uring: served through FUSE over io_uring (the bench turns the
 *                   fuse module's enable_uring switch on while it mounts, and puts it back)
 *   unionfs-ts-baseline the same with another checkout's build (--baseline DIR), to compare two versions
 *                   in one run; only with --baseline
 *   unionfs-ts-tar, unionfs-ts-targz  the same over the main stack packed as tar / tar.gz archives (not
 *                   unpacked: tar layers); not in the default set, and no deep stack
 *   fuse-overlayfs  fuse-overlayfs -f -o lowerdir=…,upperdir=…,workdir=… MNT
 *   unionfs-fuse    unionfs -f -o cow,allow_other UPPER=RW:L1=RO:… MNT
 *
 * Invariants:
 * - FUSE daemons run in the foreground as children of the bench, so their PID is known without searching
 *   (their CPU time and peak RSS are read from /proc/PID). Only those PIDs are ever signalled.
 * - A mount counts as up once it shows in /proc/self/mountinfo and its root answers a stat.
 * - Every mount made is registered until it is gone; `cleanupSync` (run on exit, on signals and on crashes)
 *   takes each one down: umount, then umount -l, then the daemon gets SIGTERM, then SIGKILL.
 * - Unmounting is plain `umount MNT` for every system (root may unmount FUSE mounts so), and counts as
 *   done when the mount is gone and the daemon, if any, has exited.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { failure, ok, run, sleep } from "./exec";
import { REPO } from "./helper";
import { alive, mountAt, mountsUnder } from "./proc";

export const ALL_SYSTEMS = [
  "kernel",
  "unionfs-ts",
  "unionfs-ts-ptlower",
  "unionfs-ts-uring",
  "fuse-overlayfs",
  "unionfs-fuse",
  "unionfs-ts-tar",
  "unionfs-ts-targz",
  "unionfs-ts-baseline",
] as const;
export type SystemName = (typeof ALL_SYSTEMS)[number];

/** What runs without --systems: the tar layers are opt-in (packing the data set takes a minute once), the
 * baseline comes with --baseline. */
export const DEFAULT_SYSTEMS: readonly SystemName[] = ALL_SYSTEMS.filter(
  (s) => !isTarSystem(s) && s !== "unionfs-ts-baseline",
);

/** unionfs-ts over the main stack as tar archives: `gzip` says which kind, undefined for other systems. */
export function tarSystem(sys: SystemName): { gzip: boolean } | undefined {
  if (sys === "unionfs-ts-tar") return { gzip: false };
  if (sys === "unionfs-ts-targz") return { gzip: true };
  return undefined;
}

export function isTarSystem(sys: SystemName): boolean {
  return tarSystem(sys) !== undefined;
}

export const CLI = path.join(REPO, "dist", "src", "cli", "main.js");
const ENABLE_URING = "/sys/module/fuse/parameters/enable_uring";

/**
 * Runs `mount` with the fuse module's io_uring switch on when `on`, then puts the switch back: the kernel
 * offers io_uring at INIT only while it is on, and a mount that got it keeps it.
 */
async function withUring<T>(on: boolean, mount: () => Promise<T>): Promise<T> {
  if (!on) return mount();
  const before = fs.readFileSync(ENABLE_URING, "utf8").trim();
  fs.writeFileSync(ENABLE_URING, "1");
  try {
    return await mount();
  } finally {
    fs.writeFileSync(ENABLE_URING, before === "Y" ? "1" : "0");
  }
}

/** The CLI of the checkout given with --baseline (set once, before anything is mounted). */
let baselineCli: string | undefined;

export function setBaseline(checkout: string): void {
  baselineCli = path.join(checkout, "dist", "src", "cli", "main.js");
}

/** The CLI a unionfs-ts system runs. */
function cliOf(sys: SystemName): string {
  return sys === "unionfs-ts-baseline" ? (baselineCli ?? "") : CLI;
}

/** Whether `sys` is unionfs-ts in some form (this build or the baseline, directories or tar layers). */
export function isUnionfsTs(sys: SystemName): boolean {
  return sys.startsWith("unionfs-ts");
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Why `sys` cannot run on this machine, or undefined when it can. */
export function unavailable(sys: SystemName): string | undefined {
  switch (sys) {
    case "kernel":
      return /\toverlay$/m.test(fs.readFileSync("/proc/filesystems", "utf8"))
        ? undefined
        : "no overlay in /proc/filesystems";
    case "unionfs-ts":
    case "unionfs-ts-ptlower":
    case "unionfs-ts-uring":
    case "unionfs-ts-tar":
    case "unionfs-ts-targz":
    case "unionfs-ts-baseline":
      if (sys === "unionfs-ts-baseline" && baselineCli === undefined) return "no --baseline DIR given";
      if (sys === "unionfs-ts-uring" && !fs.existsSync(ENABLE_URING))
        return `no ${ENABLE_URING} (a kernel without FUSE over io_uring)`;
      return fs.existsSync(cliOf(sys)) ? undefined : `${cliOf(sys)} not built (npx tsc -p .)`;
    case "fuse-overlayfs":
      return which("fuse-overlayfs") ? undefined : "fuse-overlayfs not installed (bash bench/setup.sh)";
    case "unionfs-fuse":
      return which("unionfs") ? undefined : "unionfs-fuse not installed (bash bench/setup.sh)";
  }
}

/** Version strings of the systems, for the JSON. */
export function versions(): Record<string, string | null> {
  const first = (cmd: string, args: string[], re: RegExp): string | null => {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 5000 });
    const line = `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n").find((l) => re.test(l));
    return line?.trim() ?? null;
  };
  return {
    kernel: first("uname", ["-r"], /./),
    "fuse-overlayfs": which("fuse-overlayfs") ? first("fuse-overlayfs", ["--version"], /overlayfs/i) : null,
    "unionfs-fuse": which("unionfs") ? first("unionfs", ["--version"], /unionfs/i) : null,
    fio: which("fio") ? first("fio", ["--version"], /fio/) : null,
  };
}

export interface Mounted {
  system: SystemName;
  stack: "main" | "deep";
  base: string;
  mnt: string;
  upper: string;
  work: string;
  log: string;
  child?: ChildProcess;
  pid?: number;
  /** Seconds from starting the mount until its root answered a stat. */
  mountSeconds: number;
  /** Type and options from the mount table. */
  info: string;
}

const active = new Map<string, Mounted>();

async function statWithin(p: string, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  const st = fs.promises.stat(p).then(
    () => true,
    () => false,
  );
  const res = await Promise.race([st, deadline]);
  clearTimeout(timer);
  return res;
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim().split("\n").slice(-3).join(" / ").slice(0, 300);
  } catch {
    return "";
  }
}

/**
 * Mounts `lowers` (absolute, top first) under a fresh dir `base` with `sys`. Throws with a one-line
 * reason when the mount does not come up within `deadlineMs` (nothing is left mounted then).
 */
export async function mountStack(
  sys: SystemName,
  stack: "main" | "deep",
  lowers: readonly string[],
  base: string,
  env: NodeJS.ProcessEnv,
  deadlineMs = 30_000,
  uncached = false,
): Promise<Mounted> {
  if (mountsUnder(base).length > 0) throw new Error(`something is mounted under ${base}`);
  fs.rmSync(base, { recursive: true, force: true });
  const m: Mounted = {
    system: sys,
    stack,
    base,
    mnt: path.join(base, "merged"),
    upper: path.join(base, "upper"),
    work: path.join(base, "work"),
    log: path.join(base, "daemon.log"),
    mountSeconds: 0,
    info: "",
  };
  for (const d of [m.mnt, m.upper, m.work]) fs.mkdirSync(d, { recursive: true });
  const t0 = process.hrtime.bigint();
  active.set(m.mnt, m);
  try {
    await withUring(sys === "unionfs-ts-uring", () => start(sys, m, lowers, env, t0, deadlineMs, uncached));
    m.mountSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const row = mountAt(m.mnt);
    // 128 lowerdirs would swamp the notes: name how many there are instead.
    const opts = (row?.superOptions ?? "").replace(
      /lowerdir=[^,]*/,
      (v) => `lowerdir=<${v.split(":").length} dirs>`,
    );
    m.info = row ? `${row.fsType} ${opts}` : "";
    return m;
  } catch (err) {
    await unmountStack(m);
    throw err;
  }
}

/**
 * Mounts `sys` at `m.mnt` and waits until its root answers. `uncached`: the kernel keeps no names or
 * attributes (timeouts 0), so every stat is a round trip to the daemon; kernel overlayfs has no such
 * option and caches as always.
 */
async function start(
  sys: SystemName,
  m: Mounted,
  lowers: readonly string[],
  env: NodeJS.ProcessEnv,
  t0: bigint,
  deadlineMs: number,
  uncached: boolean,
): Promise<void> {
  if (sys === "kernel") {
    // Relative lowerdirs: 128 absolute paths would not fit in the one page of mount options.
    const cwd = path.dirname(lowers[0] as string);
    const opts = `lowerdir=${lowers.map((l) => path.basename(l)).join(":")},upperdir=${m.upper},workdir=${m.work}`;
    const r = await run("mount", ["-t", "overlay", "overlay", "-o", opts, m.mnt], {
      timeoutMs: 30_000,
      cwd,
    });
    if (!ok(r)) throw new Error(`mount -t overlay failed: ${failure(r)}`);
  } else {
    let cmd: string;
    let args: string[];
    if (isUnionfsTs(sys)) {
      cmd = process.execPath;
      args = [cliOf(sys), "mount", "-f", [m.upper, ...lowers].join(":"), m.mnt];
      // The opt-in mode that passes read-only opens of lower files through too.
      if (sys === "unionfs-ts-ptlower") args.splice(3, 0, "-o", "passthrough=lower");
      if (sys === "unionfs-ts-uring") args.splice(3, 0, "-o", "io_uring");
      if (uncached) args.splice(3, 0, "-o", "timeout=0");
    } else if (sys === "fuse-overlayfs") {
      cmd = "fuse-overlayfs";
      const timeouts = uncached ? ",timeout=0" : "";
      args = [
        "-f",
        "-o",
        `lowerdir=${lowers.join(":")},upperdir=${m.upper},workdir=${m.work}${timeouts}`,
        m.mnt,
      ];
    } else {
      cmd = "unionfs";
      args = [
        "-f",
        "-o",
        `cow,allow_other${uncached ? ",entry_timeout=0,attr_timeout=0,negative_timeout=0" : ""}`,
        [`${m.upper}=RW`, ...lowers.map((l) => `${l}=RO`)].join(":"),
        m.mnt,
      ];
    }
    const logFd = fs.openSync(m.log, "w");
    try {
      // Own process group: a ^C reaches the bench, which then unmounts in order.
      m.child = spawn(cmd, args, { stdio: ["ignore", logFd, logFd], detached: true, env });
    } finally {
      fs.closeSync(logFd);
    }
    m.pid = m.child.pid;
    let exited = false;
    m.child.on("exit", () => (exited = true));
    m.child.on("error", () => (exited = true));
    for (let pause = 2; !mountAt(m.mnt); pause = Math.min(pause * 2, 50)) {
      if (exited) throw new Error(`${sys} exited before mounting: ${tail(m.log)}`);
      if (Number(process.hrtime.bigint() - t0) / 1e6 > deadlineMs) {
        throw new Error(`${sys} did not mount within ${deadlineMs / 1000} s: ${tail(m.log)}`);
      }
      await sleep(pause);
    }
  }
  if (!(await statWithin(m.mnt, deadlineMs))) throw new Error(`${sys}: the mount's root does not answer`);
}

function exitOf(m: Mounted, ms: number): Promise<boolean> {
  const child = m.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Takes `m` down for sure and deletes its dir. Returns the seconds until the mount was gone and the
 * daemon had exited, and a note when it needed force (umount -l, signals).
 */
export async function unmountStack(m: Mounted): Promise<{ seconds: number; note: string }> {
  const notes: string[] = [];
  const t0 = process.hrtime.bigint();
  if (mountAt(m.mnt)) {
    const r = await run("umount", [m.mnt], { timeoutMs: 20_000 });
    if (mountAt(m.mnt)) {
      notes.push(`umount failed (${failure(r)}), detached with umount -l`);
      await run("umount", ["-l", m.mnt], { timeoutMs: 20_000 });
    }
  }
  if (!(await exitOf(m, 10_000))) {
    notes.push("daemon still running 10 s after unmount: SIGTERM");
    m.child?.kill("SIGTERM");
    if (!(await exitOf(m, 5_000))) {
      notes.push("SIGKILL");
      m.child?.kill("SIGKILL");
      await exitOf(m, 5_000);
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!mountAt(m.mnt)) active.delete(m.mnt);
  if (mountsUnder(m.base).length === 0) fs.rmSync(m.base, { recursive: true, force: true });
  else notes.push(`still mounted under ${m.base}`);
  return { seconds, note: notes.join("; ") };
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Synchronous last-resort cleanup of every mount still registered (exit, signal, crash). */
export function cleanupSync(): void {
  for (const m of active.values()) {
    if (mountAt(m.mnt)) spawnSync("umount", [m.mnt], { timeout: 10_000, stdio: "ignore" });
    if (mountAt(m.mnt)) spawnSync("umount", ["-l", m.mnt], { timeout: 10_000, stdio: "ignore" });
    const pid = m.pid;
    if (pid !== undefined && m.child?.exitCode === null && m.child.signalCode === null) {
      for (let i = 0; i < 30 && alive(pid); i++) sleepSync(100);
      if (alive(pid)) m.child.kill("SIGTERM");
      for (let i = 0; i < 20 && alive(pid); i++) sleepSync(100);
      if (alive(pid)) m.child.kill("SIGKILL");
    }
    if (!mountAt(m.mnt)) active.delete(m.mnt);
  }
}

/** Mountpoints still registered (for the final check). */
export function stillMounted(): string[] {
  return [...active.keys()].filter((p) => mountAt(p) !== undefined);
}
