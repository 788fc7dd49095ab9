/**
 * `unionfs-ts run`, the host side: mount the union (through the CLI, so its daemon is a detached process
 * in the host's namespaces), start COMMAND in new namespaces via unshare(1) + the helper (inner.ts), wait,
 * clean up, and pass COMMAND's exit status through.
 *
 * Invariants:
 * - The FUSE daemon is started before, and outside, the new namespaces, and never touches its own mount.
 * - The union is LAYERS with a generated init layer (initlayer.ts) under the writable top branch; the
 *   mountpoint and the init layer live in one temp dir of the run's own (`$TMPDIR/unionfs-ts-run-*`),
 *   never inside a layer the user gave.
 * - Whatever happens after the mount (COMMAND fails, is killed, the helper fails, run gets SIGTERM/SIGHUP/
 *   SIGINT, the daemon dies), the union is unmounted before run exits (unless --keep), its temp dir
 *   removed, and no process is left in the container's mount namespace (so no copy of a mount
 *   survives there either). Only processes this run started are ever signalled.
 * - If the daemon dies while COMMAND runs, COMMAND gets ENOTCONN from its files (the kernel aborts the
 *   connection); if it does not end by itself soon, run stops it (SIGTERM, then SIGKILL) and exits
 *   non-zero.
 * - Exit status: COMMAND's; 128+N when it died of signal N; 125 when the container could not be set up
 *   or its union died under it; 126/127 when COMMAND could not be executed / found.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import type { Readable } from "node:stream";
import { containerEnv, type RunOptions } from "./options";
import {
  childrenOf,
  findDaemon,
  isAlive,
  mountNsOf,
  mountTypesAt,
  pidsInMountNs,
  pollUntil,
  signalDisposition,
  waitAtMost,
} from "./procs";
import { formatBranches, parseBranches } from "../unionfs/branches";
import { buildInitLayer, hostInitSpec, runMountpoints, withInitLayer } from "./initlayer";
import { EXIT_SETUP, encodeSpec, type ContainerSpec } from "./spec";
import { signalStatus, unshareArgs } from "./unshare";

export interface ContainerRequest {
  opts: RunOptions;
  /** dist/src/cli/main.js: the union is mounted with `node main.js mount LAYERS MNT`. */
  cliPath: string;
  /** For --mounted: the canonical path of the existing unionfs-ts mount. */
  mountpoint?: string;
  /** `-o` options for mounting `opts.layers` (an image's container: whiteout=overlay, its work dir). */
  mountOptions?: string[];
  /**
   * An empty directory to build the init layer in, which the caller keeps (an image store's
   * `overlay2/<id>-init/diff`); by default it is made in the run's own temp dir and removed with it.
   */
  initLayer?: string;
}

/** Once its union died: how long COMMAND may go on before SIGTERM, and from SIGTERM to SIGKILL. */
const NOTICE_MS = 1_000;
const GRACE_MS = 2_000;
/** From a SIGTERM passed on to the container to SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** From a first reading of "PID 1 has no handler for the signal run got" to the second (SignalRelay). */
const STAND_IN_CONFIRM_MS = 100;
const DAEMON_POLL_MS = 200;
const DAEMON_EXIT_MS = 5_000;
const LEFTOVER_EXIT_MS = 5_000;
const READY_EOF_MS = 1_000;
/** Test seam: force the chroot fallback instead of pivot_root. */
export const NO_PIVOT_ENV = "UNIONFS_TS_RUN_NO_PIVOT";

const HELPER = nodePath.join(__dirname, "inner.js");
const SIGNUMS = os.constants.signals as Readonly<Record<string, number>>;

function say(line: string): void {
  process.stderr.write(`unionfs-ts: ${line}\n`);
}

function waitExit(
  child: ReturnType<typeof spawn>,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    child.once("error", (err) => {
      say(`cannot start ${String(child.spawnfile)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      resolve({ code: EXIT_SETUP, signal: null });
    });
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
}

/**
 * Relays SIGINT/SIGQUIT/SIGTERM/SIGHUP sent to run: remembered, and (but the terminal's SIGINT and
 * SIGQUIT) passed on to the container. In a new PID namespace COMMAND is its PID 1, which the kernel
 * spares every signal it has no handler for, where any other process would die of it: run then stands
 * in for the default action (SIGKILL, reported as death by the signal), so ^C and SIGTERM end
 * `run -- sleep 100` as they end `sleep 100`.
 *
 * Run reads PID 1's handlers from /proc only when its event loop gets to the signal, which can be after a
 * PID 1 that did catch it has run its handler and is already ending. So a first reading of "no handler"
 * is taken again STAND_IN_CONFIRM_MS later, and run stands in only if the same PID 1 is still there
 * without a handler: a PID 1 the kernel spared does not end by itself, and one that is ending is left to
 * report its own status.
 */
export class SignalRelay {
  received: NodeJS.Signals | undefined;
  target: (() => number[]) | undefined;
  /** With its own PID namespace: the container's PID 1 (host PID), and how to kill the container. */
  pidNs: { pidOne: () => number | undefined; kill: () => void } | undefined;
  /** The signal whose default action run carried out on PID 1. */
  emulated: NodeJS.Signals | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly confirmTimers: NodeJS.Timeout[] = [];
  private readonly handlers = new Map<NodeJS.Signals, () => void>();

  constructor(private readonly verbose: boolean) {
    for (const sig of ["SIGINT", "SIGQUIT", "SIGTERM", "SIGHUP"] as const) {
      const h = (): void => this.on(sig);
      this.handlers.set(sig, h);
      process.on(sig, h);
    }
  }

  private on(sig: NodeJS.Signals): void {
    this.received ??= sig;
    const pid = this.pidOneWithout(sig);
    if (pid === undefined) {
      this.pass(sig);
      return;
    }
    this.confirmTimers.push(
      setTimeout(() => {
        if (this.pidOneWithout(sig) === pid) this.standIn(sig, pid);
        else this.pass(sig);
      }, STAND_IN_CONFIRM_MS),
    );
  }

  /** Passes `sig` on, but the terminal's ^C and ^\: those already reached COMMAND (same process group). */
  private pass(sig: NodeJS.Signals): void {
    if (sig === "SIGINT" || sig === "SIGQUIT" || !this.target) return;
    this.forward(sig);
  }

  /** The container's PID 1 (host PID) when it has no handler for `sig` (fatal by default), else undefined. */
  private pidOneWithout(sig: NodeJS.Signals): number | undefined {
    const pid = this.pidNs?.pidOne();
    if (pid === undefined || signalDisposition(pid, SIGNUMS[sig] ?? 0) !== "default") return undefined;
    return pid;
  }

  /** Kills the container as `sig` would have killed PID 1 (host PID `pid`) anywhere but as a PID 1. */
  private standIn(sig: NodeJS.Signals, pid: number): void {
    if (this.verbose) say(`the container's PID 1 (PID ${pid} here) has no handler for ${sig}: stopping it`);
    this.emulated ??= sig;
    this.pidNs?.kill();
  }

  /**
   * Passes `sig` on to the container. SIGTERM is followed by SIGKILL after STOP_GRACE_MS: a PID 1 without
   * a handler never sees a SIGTERM from outside its PID namespace, and run must not outlive the request.
   */
  forward(sig: NodeJS.Signals): void {
    const target = this.target;
    if (!target) return;
    for (const pid of target()) signalPid(pid, sig);
    if (sig === "SIGTERM" && this.killTimer === undefined) {
      this.killTimer = setTimeout(() => {
        for (const pid of this.target?.() ?? []) signalPid(pid, "SIGKILL");
      }, STOP_GRACE_MS);
    }
  }

  dispose(): void {
    clearTimeout(this.killTimer);
    this.confirmTimers.forEach(clearTimeout);
    for (const [sig, h] of this.handlers) process.off(sig, h);
  }
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Mounts `layers` on `mnt` with the CLI; resolves to its exit status (it printed any error itself). */
async function mountUnion(
  cliPath: string,
  layers: string,
  mnt: string,
  verbose: boolean,
  options: readonly string[] = [],
): Promise<number> {
  const args = [
    cliPath,
    "mount",
    ...(verbose ? ["-v"] : []),
    ...options.flatMap((o) => ["-o", o]),
    layers,
    mnt,
  ];
  // Its own process group: a terminal's ^C must not kill it half way (its daemon would then mount with
  // nobody left to unmount); run notes the ^C and unmounts once the mount is done.
  const child = spawn(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"], detached: true });
  const { code, signal } = await waitExit(child);
  if (signal) return signalStatus(signal, SIGNUMS);
  return code ?? EXIT_SETUP;
}

/** Takes the union down for sure: umount, else umount -l; then waits for (or kills) our daemon. */
async function unmountUnion(mnt: string, daemon: number | undefined): Promise<boolean> {
  if (mountTypesAt(mnt).length > 0) {
    const r = spawnSync("umount", ["-c", mnt], { encoding: "utf8" });
    if (r.status !== 0 && mountTypesAt(mnt).length > 0) spawnSync("umount", ["-c", "-l", mnt]);
  }
  if (mountTypesAt(mnt).length > 0) {
    say(`could not unmount ${mnt}; unmount it with: umount -l ${mnt}`);
    return false;
  }
  if (daemon !== undefined && !(await pollUntil(() => !isAlive(daemon), DAEMON_EXIT_MS))) {
    signalPid(daemon, "SIGKILL");
  }
  return true;
}

/**
 * Where a run keeps what it makes, apart from the user's layers: `$TMPDIR/unionfs-ts-run-XXXXXX/` with
 * `root/` (the union's mountpoint) and `init/` (the init layer), removed after the run (kept with --keep).
 */
interface RunDir {
  dir: string;
  root: string;
  init: string;
  /** The branch list to mount: LAYERS with the init layer under the writable top branch. */
  layers: string;
}

function makeRunDir(opts: RunOptions, layers: string, initLayer?: string): RunDir {
  const dir = fs.realpathSync(fs.mkdtempSync(nodePath.join(os.tmpdir(), "unionfs-ts-run-")));
  const root = nodePath.join(dir, "root");
  const init = initLayer ?? nodePath.join(dir, "init");
  try {
    fs.mkdirSync(root, { mode: 0o755 });
    const branches = parseBranches(layers, process.cwd());
    const lowers = branches.filter((b) => b.mode !== "rw").map((b) => b.path);
    const spec = hostInitSpec({ mountpoints: runMountpoints(opts.sys), lowers });
    if (opts.hostname !== undefined) spec.hostname = opts.hostname;
    buildInitLayer(init, spec);
    if (opts.verbose)
      say(`init layer (/etc/hosts, /etc/hostname, /etc/resolv.conf, mount points) at ${init}`);
    return { dir, root, init, layers: formatBranches(withInitLayer(branches, init)) };
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Removes the run's directory once nothing is mounted in it (never through a mount). */
function removeRunDir(r: RunDir): void {
  if (mountTypesAt(r.root).length > 0) return;
  try {
    if (r.init.startsWith(`${r.dir}/`)) fs.rmSync(r.init, { recursive: true, force: true });
    fs.rmdirSync(r.root);
    fs.rmdirSync(r.dir);
  } catch {
    // not empty or gone: leave it
  }
}

/** SIGKILLs every process still in the container's mount namespace; returns how many there were. */
async function killLeftovers(ns: string | undefined): Promise<number> {
  if (ns === undefined || ns === mountNsOf("self")) return 0;
  const pids = pidsInMountNs(ns);
  for (const pid of pids) signalPid(pid, "SIGKILL");
  await pollUntil(() => pidsInMountNs(ns).length === 0, LEFTOVER_EXIT_MS);
  return pids.length;
}

interface Outcome {
  status: number;
  daemonDied: boolean;
}

/** Runs the container on the mounted union at `root` and waits for it. */
async function runInNamespaces(
  opts: RunOptions,
  root: string,
  daemon: number | undefined,
  relay: SignalRelay,
): Promise<Outcome> {
  const spec: ContainerSpec = {
    root,
    argv: opts.command,
    env: containerEnv(opts.env, process.env),
    workdir: opts.workdir,
    pid: opts.pid,
    sys: opts.sys,
    noPivot: process.env[NO_PIVOT_ENV] === "1",
    verbose: opts.verbose,
    readyFd: 3,
  };
  if (opts.hostname !== undefined) spec.hostname = opts.hostname;
  const args = unshareArgs({ uts: opts.hostname !== undefined, pid: opts.pid }, [
    process.execPath,
    HELPER,
    encodeSpec(spec),
  ]);
  if (opts.verbose) say(`unshare ${args.slice(0, args.indexOf("--")).join(" ")} -- node inner.js SPEC`);
  const child = spawn("unshare", args, { stdio: ["inherit", "inherit", "inherit", "pipe"] });
  const exited = waitExit(child);
  const pid = child.pid;

  // The helper reports `ready mnt:[N]` on fd 3 just before it execs COMMAND.
  let ns: string | undefined;
  let text = "";
  const ready = child.stdio[3] as Readable | null;
  ready?.on("data", (d: Buffer) => {
    text += d.toString("latin1");
    const m = /^ready (\S+)$/m.exec(text);
    if (m) ns = m[1];
  });
  ready?.on("error", () => undefined);
  // EOF on fd 3 comes once the helper exec'd (close-on-exec) and unshare is gone: only then is `ns` final.
  const readyClosed = new Promise<void>((resolve) => {
    if (!ready) resolve();
    ready?.once("close", resolve);
  });

  // The container's init: unshare's forked child with --pid, else the process unshare became.
  const init = (): number[] => {
    if (pid === undefined) return [];
    return opts.pid ? [...childrenOf(pid), pid] : [pid];
  };
  relay.target = init;
  // SIGKILL of unshare, not of PID 1: PID 1 then dies of --kill-child's SIGKILL, and unshare (util-linux
  // 2.38), which cannot re-raise a SIGKILL its child died of, does not print an error and exit 1.
  if (opts.pid && pid !== undefined) {
    relay.pidNs = { pidOne: () => childrenOf(pid)[0], kill: () => signalPid(pid, "SIGKILL") };
  }
  if (relay.received && relay.received !== "SIGINT") relay.forward(relay.received);

  // Once the daemon is gone, COMMAND gets ENOTCONN from its files; it has NOTICE_MS to end by itself,
  // then SIGTERM, then SIGKILL GRACE_MS later (a sleeping PID 1 would otherwise never end).
  let daemonDied = false;
  const timers: NodeJS.Timeout[] = [];
  const watch = setInterval(() => {
    if (daemon === undefined || daemonDied || isAlive(daemon)) return;
    daemonDied = true;
    say(`the FUSE daemon serving ${root} died; its files now fail with ENOTCONN; stopping COMMAND`);
    timers.push(
      setTimeout(() => init().forEach((p) => signalPid(p, "SIGTERM")), NOTICE_MS),
      setTimeout(() => init().forEach((p) => signalPid(p, "SIGKILL")), NOTICE_MS + GRACE_MS),
    );
  }, DAEMON_POLL_MS);

  const { code, signal } = await exited;
  clearInterval(watch);
  timers.forEach(clearTimeout);
  relay.target = undefined;
  relay.pidNs = undefined;
  await waitAtMost(readyClosed, READY_EOF_MS);
  ready?.destroy();

  const left = await killLeftovers(ns);
  if (left > 0) say(`killed ${left} process(es) still running in the container after COMMAND ended`);
  const died = relay.emulated !== undefined && signal === "SIGKILL" ? relay.emulated : signal;
  const status = died ? signalStatus(died, SIGNUMS) : (code ?? EXIT_SETUP);
  return { status, daemonDied };
}

/** The whole `run`: mount (unless --mounted), container, unmount (unless --keep). */
export async function runContainer(req: ContainerRequest): Promise<number> {
  const { opts } = req;
  const relay = new SignalRelay(opts.verbose);
  let mnt = req.mountpoint;
  let mountedHere = false;
  let runDir: RunDir | undefined;
  try {
    if (mnt === undefined) {
      if (opts.layers === undefined) throw new Error("runContainer: neither LAYERS nor a mountpoint");
      runDir = makeRunDir(opts, opts.layers, req.initLayer);
      mnt = runDir.root;
      const code = await mountUnion(req.cliPath, runDir.layers, mnt, opts.verbose, req.mountOptions);
      // Even a failed mount is taken down in `finally` should something be mounted there after all.
      mountedHere = code === 0 || mountTypesAt(mnt).length > 0;
      if (code !== 0) return code;
    }
    if (relay.received) return signalStatus(relay.received, SIGNUMS);
    const daemon = findDaemon(mnt);
    if (opts.verbose)
      say(`union at ${mnt}, served by ${daemon === undefined ? "an unknown process" : `PID ${daemon}`}`);
    const { status, daemonDied } = await runInNamespaces(opts, mnt, daemon, relay);
    if (daemonDied && status === 0) return EXIT_SETUP;
    return status;
  } finally {
    if (mountedHere && mnt !== undefined && opts.keep) {
      const rm = runDir === undefined ? "" : `, then: rm -r ${runDir.dir}`;
      say(`the union stays mounted at ${mnt} (unmount it with: unionfs-ts umount ${mnt}${rm})`);
    } else {
      const down = mountedHere && mnt !== undefined ? await unmountUnion(mnt, findDaemon(mnt)) : true;
      if (runDir !== undefined && down) removeRunDir(runDir);
    }
    relay.dispose();
  }
}
