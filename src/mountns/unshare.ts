/**
 * The unshare(1) command line that starts the setup helper in fresh namespaces. Pure.
 *
 * Invariants: always a new mount namespace with private propagation (nothing mounted inside reaches the
 * host) and a new IPC namespace (System V objects and POSIX message queues of its own); a new UTS
 * namespace only for a hostname; with a new PID namespace unshare forks, so the helper
 * (and COMMAND, which it execs) is PID 1, and --kill-child makes the container die with unshare.
 */

export interface NamespaceChoice {
  /** New UTS namespace (for --hostname). */
  uts: boolean;
  /** New PID namespace (--pid). */
  pid: boolean;
}

/** Arguments for `unshare` (without the program name) running `program` in the new namespaces. */
export function unshareArgs(ns: NamespaceChoice, program: readonly string[]): string[] {
  const args = ["--mount", "--propagation", "private", "--ipc"];
  if (ns.uts) args.push("--uts");
  if (ns.pid) args.push("--pid", "--fork", "--kill-child");
  args.push("--", ...program);
  return args;
}

/** 128 + the signal's number: how a shell reports death by a signal. */
export function signalStatus(signal: NodeJS.Signals, numbers: Readonly<Record<string, number>>): number {
  return 128 + (numbers[signal] ?? 0);
}
