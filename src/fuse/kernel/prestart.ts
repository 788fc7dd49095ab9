/**
 * Starting the serving thread before the command line is even parsed: a new worker spends ~150 ms
 * booting Node and loading the transport, which otherwise only begins once the mounting thread has
 * loaded and validated everything. The thread (boot.ts) loads the serving code (JavaScript only) at
 * once, and waits for its WorkerData in a "start" message before it loads koffi and builds the union.
 *
 * Invariants:
 * - Imported first by the CLI, for its side effect: a thread is started only when the command can
 *   only be a foreground mount (-f/--foreground, or the daemon re-run of a mount). It is unref'd until
 *   taken, so a command that fails validation exits without waiting for it (Node stops it at exit).
 * - At most one waits at a time, and `takePrestarted()` hands each out at most once (a process serving
 *   several mounts, cli/shared, starts the next with `prestart()`).
 * - Loads nothing but node:path and node:worker_threads.
 */
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import type { WorkerData, WorkerMessage } from "./messages";

/** The worker script, which both ways of starting the thread run. */
export const WORKER_FILE = path.join(__dirname, "worker.js");

/**
 * The serving thread's young generation: 6 MiB (2 MiB semi-spaces) instead of V8's 48 MiB. A request's
 * garbage is a few hundred bytes and what lives on (inode table, caches) is promoted either way, so the
 * larger nursery bought no speed, only ~45 MiB of RSS on a tree walk.
 */
export const WORKER_LIMITS = { maxYoungGenerationSizeMb: 6 };

/** workerData of a thread that waits for a "start" message. */
export const PRESTARTED = "prestarted";
/** The same, for a thread that loads koffi and the tar code too before the message (see `prestart`). */
export const PRELOADING = "prestarted, preloading";

export function isPrestarted(data: unknown): boolean {
  return data === PRESTARTED || data === PRELOADING;
}
/** The entry of such a thread. */
const BOOT_FILE = path.join(__dirname, "boot.js");

/** In a prestarted thread: the WorkerData its "start" message brought (see boot.ts). */
let startData: WorkerData | undefined;
export function received(data: WorkerData): void {
  startData = data;
}
export function receivedData(): WorkerData | undefined {
  return startData;
}

/** The CLI's commands other than `mount` (its default command). */
export const NOT_MOUNTS: ReadonlySet<string> = new Set([
  "umount",
  "run",
  "diff",
  "export",
  "import",
  "mount-overlay2",
  "install-helper",
  "help",
  "load",
  "images",
  "rmi",
  "ps",
  "rm",
  "commit",
  "save",
]);

let waiting: Worker | undefined;

function looksLikeForegroundMount(argv: readonly string[]): boolean {
  const first = argv.find((a) => !a.startsWith("-"));
  if (first !== undefined && NOT_MOUNTS.has(first)) return false;
  if (argv.includes("--help") || argv.includes("-h") || argv.includes("--version")) return false;
  if (argv.includes("--transport=fuse-native")) return false;
  return argv.includes("-f") || argv.includes("--foreground") || process.env.UNIONFS_TS_DAEMON === "1";
}

/** The prestarted thread, if there is one not yet taken; the caller must post it a "start" message. */
export function takePrestarted(): Worker | undefined {
  const w = waiting;
  waiting = undefined;
  w?.ref();
  return w;
}

/** Resolves once the waiting thread (if any) is not loading native code: stopping it is safe. */
let settled: Promise<void> = Promise.resolve();
export function prestartSettled(): Promise<void> {
  return settled;
}

/**
 * Starts a thread for the next mount of this process, unless one is waiting already. With `preload`
 * it loads the serving code at once (the mount then waits for none of it), and the process must not
 * exit before `prestartSettled()` resolves: a process that serves several mounts (cli/shared).
 */
export function prestart(preload = false): void {
  if (waiting !== undefined) return;
  const w = new Worker(BOOT_FILE, {
    workerData: preload ? PRELOADING : PRESTARTED,
    resourceLimits: WORKER_LIMITS,
  });
  waiting = w;
  w.unref();
  // Until taken nobody listens: a thread that dies meanwhile is not handed out (a fresh one is made).
  w.on("error", () => undefined);
  const gone = new Promise<void>((resolve) => {
    w.on("exit", () => {
      if (waiting === w) waiting = undefined;
      resolve();
    });
  });
  if (preload) {
    const loaded = new Promise<void>((resolve) =>
      w.on("message", (m: WorkerMessage) => m.type === "preloaded" && resolve()),
    );
    settled = Promise.race([loaded, gone]);
  }
}

/** Starts the thread for a foreground mount command line (`argv` without node and the script). */
export function prestartFor(argv: readonly string[]): void {
  if (looksLikeForegroundMount(argv)) prestart();
}
