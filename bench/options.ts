/**
 * Command-line options of the bench. Invariant: bad input throws a UsageError naming the option, before
 * anything is built, mounted or measured.
 */
import * as path from "node:path";
import { ALL_SYSTEMS, DEFAULT_SYSTEMS, type SystemName } from "./systems";
import { ALL_GROUPS, type Group } from "./workloads";

export const USAGE = `usage: npm run bench -- [options]      (or: node dist/bench/run.js [options], as root)

  --systems LIST     comma list of ${ALL_SYSTEMS.join(",")}
                     (default: all but the tar ones; missing ones are skipped)
  --workloads LIST   comma list of ${ALL_GROUPS.join(",")} (default: all)
  --reps N           repeat every system N times, fresh mount and upper each time (default 1)
  --quick            small data set and short runs: a smoke test of the bench itself, not a measurement
  --out DIR          where results.json, results.md and rows.jsonl go
                     (default /tmp/unionfs-ts-bench-results/<timestamp>)
  --data DIR         data set cache (default /tmp/unionfs-ts-bench-data)
  --force            rebuild the data set
  --timeout S        time limit per workload in seconds (default 45; quick: 20)
  --budget S         time budget of the whole run in seconds; later workloads are skipped once it is
                     used up (default 900; quick: 180)
  --scratch DIR      where the mounts and upper dirs are made (default: a new dir under $TMPDIR or /tmp)
  --no-prime         do not read the data set once before the first system
  --baseline DIR     also run unionfs-ts-baseline: the build in DIR/dist of another checkout (e.g. a
                     git worktree of an older commit), to compare two versions side by side in one run
  -h, --help         this text`;

export class UsageError extends Error {}

export interface Options {
  systems: SystemName[];
  groups: Group[];
  reps: number;
  quick: boolean;
  out: string;
  data: string;
  force: boolean;
  timeoutS: number;
  budgetS: number;
  scratch: string | undefined;
  prime: boolean;
  /** A checkout whose build runs as unionfs-ts-baseline. */
  baseline: string | undefined;
  help: boolean;
}

const ALIASES: Record<string, Group> = { create: "smallfiles", stat: "deep", ls: "lsr", write: "seqwrite" };

function list<T extends string>(
  raw: string,
  all: readonly T[],
  what: string,
  alias: Record<string, T> = {},
): T[] {
  const items =
    raw === "all"
      ? [...all]
      : raw
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "");
  const out: T[] = [];
  for (const it of items) {
    const v = (alias[it] ?? it) as T;
    if (!all.includes(v)) throw new UsageError(`unknown ${what} '${it}' (known: ${all.join(", ")})`);
    if (!out.includes(v)) out.push(v);
  }
  if (out.length === 0) throw new UsageError(`empty ${what} list`);
  return out;
}

function positive(raw: string | undefined, opt: string): number {
  const n = Number(raw);
  if (raw === undefined || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`${opt} needs a positive number`);
  return n;
}

export function parseOptions(argv: readonly string[], now = new Date()): Options {
  let systems: SystemName[] = [...DEFAULT_SYSTEMS];
  let groups: Group[] = [...ALL_GROUPS];
  let reps = 1;
  let quick = false;
  let out: string | undefined;
  let data = "/tmp/unionfs-ts-bench-data";
  let force = false;
  let timeoutS: number | undefined;
  let budgetS: number | undefined;
  let scratch: string | undefined;
  let prime = true;
  let baseline: string | undefined;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] =
      a.startsWith("--") && a.includes("=")
        ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)]
        : [a, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--systems":
      case "-s":
        systems = list(value(), ALL_SYSTEMS, "system");
        break;
      case "--workloads":
      case "-w":
        groups = list(value(), ALL_GROUPS, "workload", ALIASES);
        break;
      case "--reps":
      case "-r":
        reps = Math.floor(positive(value(), flag));
        break;
      case "--quick":
        quick = true;
        break;
      case "--out":
      case "-o":
        out = path.resolve(value());
        break;
      case "--data":
        data = path.resolve(value());
        break;
      case "--force":
        force = true;
        break;
      case "--timeout":
        timeoutS = positive(value(), flag);
        break;
      case "--budget":
        budgetS = positive(value(), flag);
        break;
      case "--scratch":
        scratch = path.resolve(value());
        break;
      case "--no-prime":
        prime = false;
        break;
      case "--baseline":
        baseline = path.resolve(value());
        break;
      case "-h":
      case "--help":
        help = true;
        break;
      default:
        throw new UsageError(`unknown argument '${a}'`);
    }
  }
  if (baseline !== undefined && !systems.includes("unionfs-ts-baseline")) systems.push("unionfs-ts-baseline");
  if (baseline === undefined && systems.includes("unionfs-ts-baseline"))
    throw new UsageError("unionfs-ts-baseline needs --baseline DIR");
  const stamp = now
    .toISOString()
    .replace(/[:.]/g, "-")
    .replace(/-\d+Z$/, "Z");
  return {
    systems,
    groups,
    reps,
    quick,
    out: out ?? path.join("/tmp/unionfs-ts-bench-results", `${stamp}${quick ? "-quick" : ""}`),
    data,
    force,
    timeoutS: timeoutS ?? (quick ? 20 : 45),
    budgetS: budgetS ?? (quick ? 180 : 900),
    scratch,
    prime,
    baseline,
    help,
  };
}
