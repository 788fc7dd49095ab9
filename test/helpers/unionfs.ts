/**
 * Running the unionfs-ts CLI from tests.
 *
 * The FUSE server never runs inside the mocha process: `mountUnion` runs `node dist/src/cli/main.js mount …`
 * as a child process, waits for it to exit 0 and for the mount to show in the mount table, and returns a
 * handle whose `unmount()` always leaves nothing mounted (umount, then umount -l, then SIGKILL of a daemon
 * that does not exit). `startForegroundUnion` runs `mount -f` and keeps the child, for lifecycle tests.
 *
 * Every CLI child gets the environment variable UNIONFS_TS_TEST_TAG=<unique tag>; a daemon inherits it,
 * which is how tests find the daemon's PID without the CLI having to print it.
 *
 * In a describe block, `const t = useCleanup();` registers an afterEach hook that unmounts and deletes
 * everything made through `t` during the test, last made first, even when the test failed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  canonicalPath,
  forceUnmount,
  isMounted,
  mountKernelOverlay,
  mountsAt,
  waitFor,
  type KernelOverlay,
  type OverlayOptions,
  type UnmountOutcome,
} from "./mounts";
import { makeTempDir, makeTree, removeTree, TMP_PREFIX, type TreeSpec } from "./tmp";

/** dist/test/helpers/unionfs.js → dist/src/cli/main.js */
export const CLI_PATH = path.resolve(__dirname, "..", "..", "src", "cli", "main.js");
export const TAG_VAR = "UNIONFS_TS_TEST_TAG";

/** How long a mount, an unmount or a daemon's exit may take before a test calls it a failure. */
export const MOUNT_DEADLINE_MS = 15_000;
export const EXIT_DEADLINE_MS = 10_000;

export function cliBuilt(): boolean {
  return fs.existsSync(CLI_PATH);
}

/** The CLI (or the union core behind it) is not there yet: tests that need it should skip. */
export class NotBuiltError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NotBuiltError";
  }
}

/** stderr of a CLI that exists but cannot mount yet because a part it needs is not built. */
const NOT_BUILT_RE = /not (yet )?built|not implemented|ENOSYS|Cannot find module/i;

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The tag given to the child (and so to any daemon it left running). */
  tag: string;
  durationMs: number;
}

export function newTag(): string {
  return `t${process.pid}-${randomBytes(6).toString("hex")}`;
}

function outputFiles(): { dir: string; out: string; err: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}cli-out-`));
  return { dir, out: path.join(dir, "stdout"), err: path.join(dir, "stderr") };
}

/**
 * Runs `node dist/src/cli/main.js ARGS` and resolves when that process exits (not when a daemon it left
 * behind does: output goes to files, so an inherited descriptor holds nothing up). A child still running
 * after `timeoutMs` is SIGKILLed and the result shows the signal.
 */
export async function runCli(
  args: readonly string[],
  opts: { timeoutMs?: number; tag?: string } = {},
): Promise<CliResult> {
  const tag = opts.tag ?? newTag();
  const files = outputFiles();
  const outFd = fs.openSync(files.out, "w");
  const errFd = fs.openSync(files.err, "w");
  const started = Date.now();
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [CLI_PATH, ...args], {
      stdio: ["ignore", outFd, errFd],
      env: { ...process.env, [TAG_VAR]: tag },
    });
  } finally {
    fs.closeSync(outFd);
    fs.closeSync(errFd);
  }
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      const timer = setTimeout(() => {
        if (child.pid !== undefined) child.kill("SIGKILL");
      }, opts.timeoutMs ?? 30_000);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.once("exit", (c, s) => {
        clearTimeout(timer);
        resolve({ code: c, signal: s });
      });
    },
  );
  const result: CliResult = {
    status: code,
    signal,
    stdout: fs.readFileSync(files.out, "utf8"),
    stderr: fs.readFileSync(files.err, "utf8"),
    tag,
    durationMs: Date.now() - started,
  };
  fs.rmSync(files.dir, { recursive: true, force: true });
  return result;
}

// ---- processes ----------------------------------------------------------------------------------

/** False for a PID that is gone or a zombie. */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/**
 * Live processes carrying `tag` in their environment, plus (for a daemon that re-executed itself with a
 * fresh environment) node processes whose command line names `mountpoint`. Never the mocha process.
 */
export function daemonPidsFor(tag: string, mountpoint?: string): number[] {
  const needle = Buffer.from(`${TAG_VAR}=${tag}\0`);
  const mnt = mountpoint === undefined ? undefined : Buffer.from(canonicalPath(mountpoint));
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${pid}/environ`);
      let match = env.indexOf(needle) >= 0;
      if (!match && mnt !== undefined) {
        const argv = fs.readFileSync(`/proc/${pid}/cmdline`);
        const args = argv.toString("latin1").split("\0");
        match =
          args.some((a) => a === mnt.toString("latin1")) && (args[0] ?? "").includes("node") && isAlive(pid);
      }
      if (match && isAlive(pid)) pids.push(pid);
    } catch {
      // The process went away while we looked.
    }
  }
  return pids;
}

/** SIGKILLs the given processes (only ever ones a test started) and waits until they are gone. */
export async function killAndWait(pids: readonly number[], deadlineMs = EXIT_DEADLINE_MS): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  await waitFor(() => pids.every((p) => !isAlive(p)), deadlineMs, `processes ${pids.join(", ")} to die`);
}

// ---- mounting -----------------------------------------------------------------------------------

export interface MountOptions {
  /** Each becomes `-o OPT` (e.g. "ro", "workdir=/x"). */
  options?: readonly string[];
  verbose?: boolean;
  /** Placed before BRANCHES, after the -o options. */
  extraArgs?: readonly string[];
  /** What keeps a foreground mount in the foreground: `-f` by default (or `-d`, which implies it). */
  foregroundArgs?: readonly string[];
  deadlineMs?: number;
}

export interface UnmountReport {
  outcome: UnmountOutcome;
  /** Daemon PIDs that did not exit by themselves within the deadline and were SIGKILLed. */
  killed: number[];
}

export interface UnionMount {
  readonly mnt: string;
  readonly branches: string;
  readonly tag: string;
  /** The serving processes found now (empty once they exited). */
  daemonPids(): number[];
  /**
   * Leaves nothing mounted at `mnt`: umount, then umount -l; then waits for the daemon to exit and
   * SIGKILLs it if it does not. Only throws if something is still mounted afterwards.
   */
  unmount(): Promise<UnmountReport>;
}

/** UNIONFS_TS_TRANSPORT=kernel|fuse-native|auto runs every CLI mount of the tests through that transport. */
export const TRANSPORT_VAR = "UNIONFS_TS_TRANSPORT";

function mountArgs(branches: string, mnt: string, o: MountOptions, foreground: boolean): string[] {
  const args = ["mount"];
  const transport = process.env[TRANSPORT_VAR];
  if (transport) args.push(`--transport=${transport}`);
  if (foreground) args.push(...(o.foregroundArgs ?? ["-f"]));
  if (o.verbose) args.push("-v");
  for (const opt of o.options ?? []) args.push("-o", opt);
  args.push(...(o.extraArgs ?? []), branches, mnt);
  return args;
}

function isFuseAt(mnt: string): boolean {
  return mountsAt(mnt).some((m) => m.fsType === "fuse" || m.fsType.startsWith("fuse."));
}

async function stopDaemons(tag: string, mnt: string, known: readonly number[]): Promise<number[]> {
  const pending = () => [...new Set([...known, ...daemonPidsFor(tag, mnt)])].filter(isAlive);
  try {
    await waitFor(() => pending().length === 0, EXIT_DEADLINE_MS, "the daemon to exit after unmount");
    return [];
  } catch {
    const left = pending();
    await killAndWait(left);
    return left;
  }
}

/**
 * Mounts BRANCHES on `mnt` through the CLI and returns once it is live. Throws `NotBuiltError` when the
 * CLI or the core is not built yet, and a plain Error (with the CLI's stderr) for any other failure; in
 * both cases nothing is left mounted.
 */
export async function mountUnion(
  branches: string,
  mnt: string,
  opts: MountOptions = {},
): Promise<UnionMount> {
  if (!cliBuilt()) throw new NotBuiltError(`${path.relative(process.cwd(), CLI_PATH)} is not built yet`);
  const target = canonicalPath(mnt);
  const r = await runCli(mountArgs(branches, target, opts, false));
  if (r.status !== 0) {
    if (isMounted(target)) forceUnmount(target);
    await killAndWait(daemonPidsFor(r.tag, target));
    const why = `unionfs-ts mount exited ${r.status ?? r.signal}: ${r.stderr.trim()}`;
    throw NOT_BUILT_RE.test(r.stderr) ? new NotBuiltError(why) : new Error(why);
  }
  try {
    await waitFor(() => isFuseAt(target), opts.deadlineMs ?? MOUNT_DEADLINE_MS, `a FUSE mount at ${target}`);
  } catch (err) {
    await killAndWait(daemonPidsFor(r.tag, target));
    throw err;
  }
  const tag = r.tag;
  const seen = new Set(daemonPidsFor(tag, target));
  return {
    mnt: target,
    branches,
    tag,
    daemonPids: () => {
      for (const p of daemonPidsFor(tag, target)) seen.add(p);
      return [...seen].filter(isAlive);
    },
    async unmount() {
      const before = daemonPidsFor(tag, target);
      const outcome = forceUnmount(target);
      const killed = await stopDaemons(tag, target, [...seen, ...before]);
      return { outcome, killed };
    },
  };
}

export interface ForegroundUnion extends UnionMount {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves when the `mount -f` process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  /** What the process wrote so far. */
  stderr(): string;
  stdout(): string;
}

/**
 * Runs `unionfs-ts mount -f …` as a child that stays alive while it serves, and returns once the mount is
 * live. The handle's `unmount()` unmounts, waits for the child to exit and SIGKILLs it if it does not.
 */
export async function startForegroundUnion(
  branches: string,
  mnt: string,
  opts: MountOptions = {},
): Promise<ForegroundUnion> {
  if (!cliBuilt()) throw new NotBuiltError(`${path.relative(process.cwd(), CLI_PATH)} is not built yet`);
  const target = canonicalPath(mnt);
  const tag = newTag();
  const files = outputFiles();
  const outFd = fs.openSync(files.out, "w");
  const errFd = fs.openSync(files.err, "w");
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [CLI_PATH, ...mountArgs(branches, target, opts, true)], {
      stdio: ["ignore", outFd, errFd],
      env: { ...process.env, [TAG_VAR]: tag },
    });
  } finally {
    fs.closeSync(outFd);
    fs.closeSync(errFd);
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once("error", () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, "utf8");
    } catch {
      return "";
    }
  };
  const cleanupFiles = () => fs.rmSync(files.dir, { recursive: true, force: true });
  const pid = child.pid ?? -1;

  const handle: ForegroundUnion = {
    mnt: target,
    branches,
    tag,
    child,
    pid,
    exited,
    hasExited: () => done,
    stderr: () => read(files.err),
    stdout: () => read(files.out),
    daemonPids: () => [...new Set([pid, ...daemonPidsFor(tag, target)])].filter((p) => p > 0 && isAlive(p)),
    async unmount() {
      const outcome = forceUnmount(target);
      const killed: number[] = [];
      if (!done) {
        try {
          await waitFor(() => done, EXIT_DEADLINE_MS, "the mount -f process to exit after unmount");
        } catch {
          if (pid > 0) killed.push(pid);
          child.kill("SIGKILL");
          await waitFor(() => done, EXIT_DEADLINE_MS, "the mount -f process to die after SIGKILL");
        }
      }
      killed.push(...(await stopDaemons(tag, target, [])));
      cleanupFiles();
      return { outcome, killed };
    },
  };

  try {
    await waitFor(
      () => done || isFuseAt(target),
      opts.deadlineMs ?? MOUNT_DEADLINE_MS,
      `a FUSE mount at ${target}`,
    );
  } catch (err) {
    await handle.unmount();
    throw err;
  }
  if (done && !isFuseAt(target)) {
    const { code, signal } = await exited;
    const stderr = handle.stderr().trim();
    await handle.unmount();
    const why = `unionfs-ts mount -f exited ${code ?? signal} before mounting: ${stderr}`;
    throw NOT_BUILT_RE.test(stderr) ? new NotBuiltError(why) : new Error(why);
  }
  return handle;
}

// ---- cleanup pattern for mocha ------------------------------------------------------------------

export class Cleanup {
  private readonly steps: Array<{ what: string; fn: () => unknown }> = [];

  /** Runs `fn` at cleanup time; last deferred runs first. */
  defer(what: string, fn: () => unknown): void {
    this.steps.push({ what, fn });
  }

  tempDir(label = "test"): string {
    const dir = makeTempDir(label);
    this.defer(`remove ${dir}`, () => removeTree(dir));
    return dir;
  }

  tree(spec: TreeSpec, label = "tree"): string {
    const dir = makeTree(spec, label);
    this.defer(`remove ${dir}`, () => removeTree(dir));
    return dir;
  }

  /** Unmounts whatever is at `mnt` at cleanup time (for mounts made by hand, or expected not to exist). */
  guardMountpoint(mnt: string, tag?: string): void {
    this.defer(`unmount ${mnt}`, async () => {
      forceUnmount(mnt);
      if (tag !== undefined) await killAndWait(daemonPidsFor(tag, mnt));
    });
  }

  async union(branches: string, mnt: string, opts?: MountOptions): Promise<UnionMount> {
    // Guard first: a mount that appeared although mountUnion threw is still taken down.
    this.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
    const m = await mountUnion(branches, mnt, opts);
    this.defer(`unmount ${mnt}`, () => m.unmount());
    return m;
  }

  async foreground(branches: string, mnt: string, opts?: MountOptions): Promise<ForegroundUnion> {
    this.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
    const m = await startForegroundUnion(branches, mnt, opts);
    this.defer(`unmount ${mnt}`, () => m.unmount());
    return m;
  }

  overlay(o: OverlayOptions): KernelOverlay {
    this.defer(`unmount ${o.mnt}`, () => forceUnmount(o.mnt));
    const m = mountKernelOverlay(o);
    this.defer(`unmount ${o.mnt}`, () => m.unmount());
    return m;
  }

  /** Runs every step, last first, even when some fail; then throws one error listing the failures. */
  async run(): Promise<void> {
    const failures: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop();
      if (step === undefined) break;
      try {
        await step.fn();
      } catch (err) {
        failures.push(`${step.what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (failures.length > 0) throw new Error(`cleanup failed:\n  ${failures.join("\n  ")}`);
  }
}

/**
 * Call inside a `describe`: returns a Cleanup that is emptied after each test (`"each"`, default) or after
 * the whole block (`"all"`), whether the tests passed or not.
 */
export function useCleanup(when: "each" | "all" = "each"): Cleanup {
  const c = new Cleanup();
  const hook = when === "each" ? afterEach : after;
  hook("unmount and remove what the test made", async function () {
    this.timeout(4 * EXIT_DEADLINE_MS);
    await c.run();
  });
  return c;
}

/** `unionfs-ts mount ARGS`, which must succeed; whatever gets mounted at `mnt` is taken down in teardown. */
export async function cliMount(t: Cleanup, args: readonly string[], mnt: string): Promise<void> {
  const r = await runCli(["mount", ...args]);
  t.guardMountpoint(mnt, r.tag);
  if (r.status !== 0)
    throw new Error(`unionfs-ts mount ${args.join(" ")}: exit ${r.status}: ${r.stderr.trim()}`);
}

/** The first directory on the way to `dir` that other users cannot search, if any (uid 65534 tests). */
export function blockedForOthers(dir: string): string | undefined {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) return d;
    if (d === "/") return undefined;
  }
}
