/**
 * Node flags of the long-lived processes the CLI starts (a mount's daemon, the shared server). Their main
 * thread only mounts and relays messages (requests are served by worker threads, whose heap limits
 * are their own: fuse/kernel/prestart.ts), so V8's default 16 MiB young generation there bought nothing
 * but resident memory: 1 MiB semi-spaces saved 4 MiB of the shared server's 20-mount PSS.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/** `execArgv` plus the daemon flags it lacks. */
export function daemonExecArgv(execArgv: readonly string[]): string[] {
  return [...execArgv, ...DAEMON_NODE_FLAGS.filter((f) => !execArgv.includes(f))];
}
