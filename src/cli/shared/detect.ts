/**
 * Whether a command line asks for a mount by the shared serving process (`-o shared`, or
 * UNIONFS_TS_SHARED=1 in the environment), read without loading the CLI's parser.
 *
 * Invariants:
 * - Loads nothing but option-list.ts and fuse/kernel/prestart.ts (which main.ts loads first anyway). Returns undefined, and so leaves the command to the full CLI
 *   (which serves it in a daemon of its own, or reports the error), for anything it does not fully
 *   understand: another command, an unknown flag, -f/--foreground, -d/--debug or `-o debug` without
 *   `log=` (a debug log then goes to stderr, which needs the foreground), --transport=fuse-native, help,
 *   and the daemon a mount command re-runs itself as (UNIONFS_TS_DAEMON=1: the server sent it back).
 * - Never throws: an unbalanced quote is the full CLI's error to report.
 */
import { NOT_MOUNTS } from "../../fuse/kernel/prestart";
import { splitOptionItems } from "../option-list";

/** A mount command line as the shared server needs it. */
export interface SharedMountArgs {
  /** `[BRANCHES|FSNAME] MOUNTPOINT`, as given (relative paths are resolved by the server against cwd). */
  positionals: string[];
  /** Every -o list, as given. */
  options: string[];
  verbose: boolean;
  transport?: string;
}

export const SHARED_ENV = "UNIONFS_TS_SHARED";

/** Flags with a value, each with the key it fills (undefined: read and ignored). */
const VALUED: Record<string, "options" | "transport" | undefined> = {
  "-o": "options",
  "--options": "options",
  "--transport": "transport",
  "--store": undefined,
};

function parse(argv: readonly string[]): SharedMountArgs | undefined {
  const out: SharedMountArgs = { positionals: [], options: [], verbose: false };
  const args = argv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "-v" || a === "--verbose") out.verbose = true;
    else if (!a.startsWith("-")) out.positionals.push(a);
    else if (a.startsWith("-o") && a.length > 2 && !a.startsWith("-o=")) out.options.push(a.slice(2));
    else {
      const eq = a.indexOf("=");
      const flag = eq < 0 ? a : a.slice(0, eq);
      if (!(flag in VALUED) || (flag === "-o" && eq >= 0)) return undefined;
      const value = eq < 0 ? args[++i] : a.slice(eq + 1);
      if (value === undefined) return undefined;
      const key = VALUED[flag];
      if (key === "options") out.options.push(value);
      else if (key === "transport") out.transport = value;
    }
  }
  // The command word may follow global options (`--store DIR images`): the first positional is it.
  const first = out.positionals[0];
  if (first !== undefined && NOT_MOUNTS.has(first)) return undefined;
  if (first === "mount") out.positionals.shift();
  return out.positionals.length === 0 || out.positionals.length > 2 ? undefined : out;
}

function items(options: readonly string[]): string[] | undefined {
  try {
    return options.flatMap((l) => splitOptionItems(l, () => new Error("unbalanced")));
  } catch {
    return undefined;
  }
}

/**
 * The mount `argv` (the arguments after the script) asks for when it is a plain one, that a daemon
 * can check and serve by itself: none of the cases the invariants above leave to the full CLI.
 */
export function plainMountArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): (SharedMountArgs & { items: string[] }) | undefined {
  // The daemon a mount command re-runs itself as serves it itself.
  if (env.UNIONFS_TS_DAEMON === "1") return undefined;
  const m = parse(argv);
  if (m === undefined || m.transport === "fuse-native") return undefined;
  const all = items(m.options);
  if (all === undefined) return undefined;
  if (all.includes("debug") && !all.some((o) => o.startsWith("log="))) return undefined;
  return { ...m, items: all };
}

/** The shared mount `argv` (the arguments after the script) asks for, if it asks for one. */
export function sharedMountArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): SharedMountArgs | undefined {
  const m = plainMountArgs(argv, env);
  if (m === undefined || (!m.items.includes("shared") && env[SHARED_ENV] !== "1")) return undefined;
  const { items: _items, ...args } = m;
  return args;
}
