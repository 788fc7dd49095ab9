#!/usr/bin/env node
/**
 * The `unionfs-ts` command line.
 *
 * Invariants:
 * - Bad input gives exactly one line on stderr, prefixed `unionfs-ts:`, and a non-zero exit; a stack
 *   trace is printed only with --verbose or for errors that are not the user's (program.ts).
 * - What a mount waits for starts before anything else loads: a foreground mount's serving thread
 *   (prestart.ts); a plain background mount's daemon (daemon.ts), which checks everything itself, or the
 *   shared server's client (cli/shared). The parser and the commands (program.ts) load only for the rest.
 */
import { prestartFor } from "../fuse/kernel/prestart";
prestartFor(process.argv.slice(2)); // a foreground mount's serving thread boots while the rest loads
import { plainMountArgs, sharedMountArgs } from "./shared/detect";

export async function main(argv: string[]): Promise<number> {
  const shared = sharedMountArgs(argv);
  if (shared !== undefined) {
    // The shared server does the whole mount: none of the mount code is loaded here (cli/shared).
    const { sharedMount } = await import("./shared/client");
    const status = await sharedMount(shared);
    if (status !== "fallback") return status;
  } else if (plainMountArgs(argv) !== undefined) {
    // Its daemon starts at once and checks everything itself: none of the mount code is loaded here.
    const { daemonize } = await import("./daemon");
    return daemonize(true);
  }
  const program = await import("./program");
  return program.main(argv);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`unionfs-ts: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
