/**
 * What the outer `run` process tells the helper that sets up the container inside the new namespace.
 *
 * Invariants: a spec is plain JSON data passed as one argv element; `decodeSpec` accepts exactly what
 * `encodeSpec` produces and rejects anything else with a message (the helper then exits EXIT_SETUP).
 */

export interface ContainerSpec {
  /** Absolute path of the union's mountpoint; the same path in the new mount namespace. */
  root: string;
  /** COMMAND and its arguments (argv[0] is searched in the container's PATH unless it has a '/'). */
  argv: string[];
  /** The complete environment of COMMAND, as K=V strings. */
  env: string[];
  /** Absolute working directory inside the container. */
  workdir: string;
  /** Set inside a new UTS namespace (the caller ran unshare --uts). */
  hostname?: string;
  /** The helper runs in a new PID namespace (it is PID 1 there, and so is COMMAND after exec). */
  pid: boolean;
  /** Mount sysfs read-only on /sys. */
  sys: boolean;
  /** Use chroot instead of pivot_root (the fallback, forced; for tests and odd hosts). */
  noPivot: boolean;
  /** Say each setup step on stderr. */
  verbose: boolean;
  /** Descriptor the helper writes `ready <mount-ns>` to just before exec, then closes; -1 for none. */
  readyFd: number;
}

/** Exit codes of the helper when it cannot start COMMAND (the docker/podman convention). */
export const EXIT_SETUP = 125;
export const EXIT_CANNOT_EXEC = 126;
export const EXIT_NOT_FOUND = 127;

export function encodeSpec(spec: ContainerSpec): string {
  return JSON.stringify(spec);
}

export function decodeSpec(text: string | undefined): ContainerSpec {
  if (text === undefined) throw new Error("no container spec given");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error("the container spec is not JSON");
  }
  if (typeof raw !== "object" || raw === null) throw new Error("the container spec is not an object");
  const o = raw as Record<string, unknown>;
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v !== "string" || !v.startsWith("/"))
      throw new Error(`container spec: '${k}' must be an absolute path`);
    return v;
  };
  const strings = (k: string): string[] => {
    const v = o[k];
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
      throw new Error(`container spec: '${k}' must be a list of strings`);
    }
    return v as string[];
  };
  const bool = (k: string): boolean => {
    const v = o[k];
    if (typeof v !== "boolean") throw new Error(`container spec: '${k}' must be true or false`);
    return v;
  };
  const spec: ContainerSpec = {
    root: str("root"),
    argv: strings("argv"),
    env: strings("env"),
    workdir: str("workdir"),
    pid: bool("pid"),
    sys: bool("sys"),
    noPivot: bool("noPivot"),
    verbose: bool("verbose"),
    readyFd: typeof o.readyFd === "number" && Number.isInteger(o.readyFd) ? o.readyFd : -1,
  };
  if (spec.argv.length === 0) throw new Error("container spec: 'argv' is empty");
  if (o.hostname !== undefined) {
    if (typeof o.hostname !== "string") throw new Error("container spec: 'hostname' must be a string");
    spec.hostname = o.hostname;
  }
  return spec;
}
