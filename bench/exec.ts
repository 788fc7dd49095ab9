/**
 * Running the measured commands: one child at a time, timed from spawn to exit, under a time limit.
 *
 * Invariants:
 * - A command that overruns its limit gets its stop signal (SIGTERM unless the workload asks for one that
 *   makes the tool print how far it got, such as SIGINT for dd), then SIGKILL 3 s later. It is never
 *   waited on longer than that.
 * - Only PIDs this process spawned are ever signalled. Running children are remembered so that an
 *   interrupted bench can end them before it unmounts (`killRunningChildren`).
 * - Output that only needs counting (find's lines) is counted as it streams, never kept whole.
 */
import { spawn, type ChildProcess } from "node:child_process";

const running = new Set<ChildProcess>();

export interface RunOptions {
  timeoutMs: number;
  cwd?: string;
  /** Sent first when the time limit is reached. */
  stopSignal?: NodeJS.Signals;
  /** "count": count stdout's newlines instead of keeping it. */
  stdout?: "keep" | "count" | "ignore";
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Seconds from spawn to exit. */
  elapsed: number;
  stdout: string;
  /** The last 4 KiB of stderr. */
  stderr: string;
  lines: number;
  error?: string;
}

export function ok(r: RunResult): boolean {
  return r.code === 0 && !r.timedOut && r.error === undefined;
}

/** Short description of a failed run, for a result's note. */
export function failure(r: RunResult): string {
  if (r.error) return r.error;
  if (r.timedOut) return "timed out";
  const why = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const tail = r.stderr.trim().split("\n").slice(-2).join(" / ");
  return tail ? `${why}: ${tail.slice(0, 240)}` : why;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve) => {
    const mode = opts.stdout ?? "keep";
    let stdout = "";
    let stderr = "";
    let lines = 0;
    let timedOut = false;
    let child: ChildProcess;
    const t0 = process.hrtime.bigint();
    const done = (r: Omit<RunResult, "elapsed" | "stdout" | "stderr" | "lines" | "timedOut">): void => {
      const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      resolve({ ...r, elapsed, stdout, stderr, lines, timedOut });
    };
    try {
      child = spawn(cmd, args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        stdio: ["ignore", mode === "ignore" ? "ignore" : "pipe", "pipe"],
      });
    } catch (err) {
      done({ code: null, signal: null, error: `cannot run ${cmd}: ${String(err)}` });
      return;
    }
    running.add(child);
    child.stdout?.on("data", (d: Buffer) => {
      if (mode === "count") {
        for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) lines++;
      } else if (stdout.length < 1 << 20) {
        stdout += d.toString("utf8");
      }
    });
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-4096);
    });
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill(opts.stopSignal ?? "SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 3000);
    }, opts.timeoutMs);
    let spawnError: string | undefined;
    child.on("error", (err) => {
      spawnError = `cannot run ${cmd}: ${err.message}`;
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      running.delete(child);
      done({ code, signal, error: spawnError });
    });
  });
}

/** SIGKILLs every child started by `run` that is still running (used when the bench is interrupted). */
export function killRunningChildren(): void {
  for (const c of running) c.kill("SIGKILL");
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
