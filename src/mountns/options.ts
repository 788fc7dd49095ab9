/**
 * `unionfs-ts run` arguments: `[options] LAYERS -- COMMAND [ARGS…]` or `[options] --mounted DIR -- COMMAND…`.
 *
 * Invariants: parsing never touches the disk; everything after the first `--` that is not an option's
 * value belongs to COMMAND, untouched; each mistake is one `UsageError` line naming the culprit.
 */
import { UsageError } from "../errors";

export interface RunOptions {
  /** Branch list as for `mount` (top first); absent with `--mounted`. */
  layers?: string;
  /** An existing unionfs-ts mountpoint to use instead of mounting `layers`. */
  mounted?: string;
  /** An image of the store to run instead of `layers` (`--image`), the container's name, the store. */
  image?: string;
  name?: string;
  store?: string;
  /** COMMAND and its arguments; never empty. */
  command: string[];
  /** New UTS namespace with this hostname. */
  hostname?: string;
  /** Working directory inside the container (absolute). */
  workdir: string;
  /** `--env K=V` values in the order given. */
  env: string[];
  /** New PID namespace, COMMAND its PID 1 (the default); false with `--pid=host`. */
  pid: boolean;
  /** Mount /sys read-only. */
  sys: boolean;
  /** Leave the union mounted afterwards; with `image`, keep the container (its writable layer). */
  keep: boolean;
  verbose: boolean;
}

/** The longest hostname Linux accepts (HOST_NAME_MAX). */
const HOST_NAME_MAX = 64;

const VALUE_OPTIONS = [
  "--mounted",
  "--image",
  "--name",
  "--store",
  "--hostname",
  "--workdir",
  "--env",
  "-e",
] as const;
const FLAG_OPTIONS = ["--sys", "--keep", "--verbose", "-v"] as const;

/** Parses the arguments that follow `run`. */
export function parseRunArgs(args: readonly string[]): RunOptions {
  const opts: RunOptions = {
    command: [],
    workdir: "/",
    env: [],
    pid: true,
    sys: false,
    keep: false,
    verbose: false,
  };
  if (!args.includes("--")) {
    throw new UsageError(
      "missing '--' before COMMAND (usage: unionfs-ts run [options] LAYERS -- COMMAND [ARGS…])",
    );
  }
  const operands: string[] = [];
  let dashes = -1;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") {
      dashes = i;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      operands.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    if (name === "--pid") {
      opts.pid = pidMode(name === arg ? undefined : arg.slice(eq + 1));
      continue;
    }
    if ((FLAG_OPTIONS as readonly string[]).includes(name)) {
      if (name !== arg) throw new UsageError(`option '${name}' takes no value`);
      setFlag(opts, name);
      continue;
    }
    if (!(VALUE_OPTIONS as readonly string[]).includes(name)) {
      throw new UsageError(`unknown option '${arg}' (COMMAND and its arguments go after '--')`);
    }
    let value: string | undefined;
    if (name !== arg) value = arg.slice(eq + 1);
    else value = args[++i];
    if (value === undefined || value === "--") throw new UsageError(`option '${name}' needs a value`);
    setValue(opts, name, value);
  }
  if (dashes < 0) throw new UsageError("missing '--' before COMMAND");
  opts.command = args.slice(dashes + 1);
  if (opts.command.length === 0 || opts.command[0] === "")
    throw new UsageError("no COMMAND given after '--'");
  if (operands.length > 1) throw new UsageError(`unexpected argument '${operands[1]}' before '--'`);
  const layers = operands[0];
  const sources = [layers, opts.mounted, opts.image].filter((v) => v !== undefined).length;
  if (sources > 1) throw new UsageError("give one of LAYERS, --mounted MOUNTPOINT or --image IMAGE");
  if (sources === 0) throw new UsageError("no LAYERS given (or use --mounted MOUNTPOINT or --image IMAGE)");
  if (opts.name !== undefined && opts.image === undefined) throw new UsageError("--name goes with --image");
  if (layers !== undefined) opts.layers = layers;
  return opts;
}

/** `--pid` / `--pid=private`: a new PID namespace (the default); `--pid=host`: the host's. */
function pidMode(value: string | undefined): boolean {
  if (value === undefined || value === "private") return true;
  if (value === "host") return false;
  throw new UsageError(`--pid takes 'host' or 'private', not '${value}'`);
}

function setFlag(opts: RunOptions, name: string): void {
  if (name === "--sys") opts.sys = true;
  else if (name === "--keep") opts.keep = true;
  else opts.verbose = true;
}

function setValue(opts: RunOptions, name: string, value: string): void {
  switch (name) {
    case "--mounted":
    case "--image":
    case "--name":
    case "--store":
      if (value === "") throw new UsageError(`option '${name}' needs a value`);
      opts[name.slice(2) as "mounted" | "image" | "name" | "store"] = value;
      break;
    case "--hostname":
      checkHostname(value);
      opts.hostname = value;
      break;
    case "--workdir":
      if (!value.startsWith("/")) {
        throw new UsageError(`--workdir must be an absolute path inside the container, not '${value}'`);
      }
      opts.workdir = value;
      break;
    default: // --env, -e
      if (value.indexOf("=") <= 0) throw new UsageError(`--env needs K=V, not '${value}'`);
      if (value.includes("\0")) throw new UsageError("--env value contains a NUL byte");
      opts.env.push(value);
  }
}

function checkHostname(name: string): void {
  if (name.length === 0) throw new UsageError("--hostname needs a non-empty name");
  if (Buffer.byteLength(name) > HOST_NAME_MAX) {
    throw new UsageError(`--hostname '${name}' is longer than ${HOST_NAME_MAX} bytes`);
  }
  if (name.includes("\0")) throw new UsageError("--hostname contains a NUL byte");
}

export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The container's environment: PATH, HOME=/root and the caller's TERM (when set), then each `--env K=V`
 * (a later value for the same K replaces the earlier one in place). Nothing else of the caller's leaks in.
 */
export function containerEnv(extra: readonly string[], callerEnv: NodeJS.ProcessEnv): string[] {
  const env = new Map<string, string>([
    ["PATH", DEFAULT_PATH],
    ["HOME", "/root"],
  ]);
  const term = callerEnv.TERM;
  if (term !== undefined && term !== "") env.set("TERM", term);
  for (const kv of extra) {
    const eq = kv.indexOf("=");
    env.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}
