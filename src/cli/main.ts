#!/usr/bin/env node
/**
 * The `unionfs-ts` command line.
 *
 * Invariants: bad input gives exactly one line on stderr, prefixed `unionfs-ts:`, and a non-zero exit;
 * a stack trace is printed only with --verbose or for errors that are not the user's.
 */
import { Command, CommanderError } from "commander";
import { UsageError } from "../unionfs/branches";
import { codeOf } from "../errors";
import { mountCommand } from "./mount";
import { umountCommand } from "./umount";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require("../../../package.json") as { version: string };

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function buildProgram(setCode: (code: number) => void): Command {
  const program = new Command("unionfs-ts")
    .description("A union filesystem served through FUSE: stack directories, top branch wins.")
    .version(version)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`unionfs-ts: ${str.replace(/^error: /, "")}`) });

  program
    .command("mount", { isDefault: true })
    .description(
      "merge BRANCHES (top first, e.g. A:B or A=rw:B=ro) on MOUNTPOINT; or -o lowerdir=… MOUNTPOINT",
    )
    .argument(
      "[branches]",
      "branch list, top first: DIR[=rw|ro|ro+wh|rr][:DIR…] (only a name with lowerdir=)",
    )
    .argument("[mountpoint]", "an existing directory")
    .option("-f, --foreground", "serve in the foreground until unmounted")
    .option(
      "-o, --options <list>",
      "mount options (repeatable): workdir=DIR, ro, whiteout=aufs|overlay, debug; or the fuse-overlayfs " +
        "set lowerdir=L1:L2,upperdir=U,workdir=W,uidmapping=…,gidmapping=…,squash_to_uid=…,noxattrs=1,fsync=0",
      collect,
      [],
    )
    .option("-d, --debug", "log every request (same as -o debug)")
    .option("-v, --verbose", "say more")
    .action(async (first: string | undefined, second: string | undefined, flags) => {
      const positionals = [first, second].filter((a): a is string => a !== undefined);
      if (flags.debug) flags.options.push("debug");
      setCode(await mountCommand(positionals, flags));
    });

  program
    .command("umount")
    .description("unmount a unionfs-ts mount (its daemon then exits)")
    .argument("<mountpoint>")
    .option("-l, --lazy", "detach even when files are open")
    .action((mountpoint: string, flags) => setCode(umountCommand(mountpoint, flags)));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => (code = c));
  const verbose = argv.includes("-v") || argv.includes("--verbose");
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    return reportError(err, verbose);
  }
}

function reportError(err: unknown, verbose: boolean): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  if (err instanceof UsageError) {
    process.stderr.write(`unionfs-ts: ${err.message}\n`);
    return 2;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`unionfs-ts: ${message.split("\n")[0]}\n`);
  if (verbose || codeOf(err) === undefined) process.stderr.write(`${(err as Error)?.stack ?? ""}\n`);
  return 1;
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
