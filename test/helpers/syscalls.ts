/**
 * Syscalls Node lacks, for tests: each runs in a short-lived python3 child (ctypes, fcntl, mmap, os.*),
 * optionally as another user, so that
 *   - a hung FUSE daemon times the child out instead of freezing mocha (koffi calls would block the
 *     test process's only thread), and
 *   - errno comes back reliably (ctypes `use_errno`), by name.
 *
 *   const r = await py(`out["r"] = attempt(renameat2, A[0], A[1], RENAME_NOREPLACE)`, [a, b]);
 *
 * The script runs after a prelude (PY_PRELUDE below) and fills the dict `out`, printed as JSON at the
 * end (bytes as latin-1 text; integers past 2^53, like ns times, must be passed as strings). `A` holds the arguments as bytes (paths may be any bytes: pass Buffers for non-UTF-8 names; they
 * travel as "hex:…" arguments).
 * `attempt(fn, *args)` returns fn's result, or the errno name ("ENOENT") when it raises OSError.
 * Also: `renameat2`, `utimensat` (with UTIME_NOW / UTIME_OMIT), `st(path)` (an lstat as a dict with ns
 * times), `fd_read(fd)`. The umask is 022 whatever the caller's is.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";

/** The system python: reachable by every uid (a pyenv shim under /root is not). */
export const PYTHON = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

export interface ChildOptions {
  /** Run as this uid (and `gid`, default the same number) with no supplementary groups, via setpriv. */
  uid?: number;
  gid?: number;
  cwd?: string;
  timeoutMs?: number;
  input?: string | Buffer;
}

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The argv prefix that runs a command as `uid`/`gid` (empty for the current user). */
export function asUser(uid?: number, gid?: number): string[] {
  if (uid === undefined) return [];
  return ["setpriv", `--reuid=${uid}`, `--regid=${gid ?? uid}`, "--clear-groups", "--"];
}

/** Runs a command asynchronously (no shell), SIGKILLed after `timeoutMs` (default 20 s). */
export function runChild(
  cmd: string,
  args: readonly string[],
  opts: ChildOptions = {},
): Promise<ChildResult> {
  const [exe, ...rest] = [...asUser(opts.uid, opts.gid), cmd, ...args] as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(exe, rest, {
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 20_000);
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (status, signal) => {
      clearTimeout(timer);
      resolve({
        status,
        signal,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
      });
    });
  });
}

/** Runs a command and throws (with its stderr) unless it exits 0. */
export async function mustRun(
  cmd: string,
  args: readonly string[],
  opts: ChildOptions = {},
): Promise<string> {
  const r = await runChild(cmd, args, opts);
  if (r.status !== 0) {
    const why = r.timedOut ? "timed out" : `exited ${r.status ?? r.signal}`;
    throw new Error(`${cmd} ${args.join(" ")} ${why}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** True when `cmd` is found on PATH (for skipping a case whose tool is missing). */
export function haveCommand(cmd: string): boolean {
  const dirs = (process.env.PATH ?? "/usr/bin:/bin").split(":");
  return dirs.some((d) => {
    try {
      fs.accessSync(`${d}/${cmd}`, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export const PY_PRELUDE = String.raw`
import ctypes, errno, fcntl, json, mmap, os, socket, stat, sys, time
A = [bytes.fromhex(a[4:]) if a.startswith("hex:") else os.fsencode(a) for a in sys.argv[1:]]
out = {}
os.umask(0o022)  # modes of new objects do not depend on the caller's umask
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2

def errname(e):
    return errno.errorcode.get(e, "E%d" % e)

def attempt(fn, *args, **kw):
    try:
        r = fn(*args, **kw)
        return "ok" if r is None else r
    except OSError as e:
        return errname(e.errno)

def check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret

def renameat2(a, b, flags):
    check(libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, ctypes.c_uint(flags)))

class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

def _ts(t):
    if t == "now":
        return timespec(0, UTIME_NOW)
    if t is None:
        return timespec(0, UTIME_OMIT)
    return timespec(t // 1000000000, t % 1000000000)

def utimensat(path, atime_ns, mtime_ns, follow=True):
    """atime_ns/mtime_ns: int nanoseconds, "now", or None (UTIME_OMIT)."""
    times = (timespec * 2)(_ts(atime_ns), _ts(mtime_ns))
    check(libc.utimensat(AT_FDCWD, path, times, 0 if follow else AT_SYMLINK_NOFOLLOW))

def st(path, follow=False):
    """lstat (stat with follow) as a dict; ino and the ns times are strings (JSON numbers lose digits)."""
    s = os.stat(path) if follow else os.lstat(path)
    return {"ino": str(s.st_ino), "mode": s.st_mode, "nlink": s.st_nlink, "uid": s.st_uid, "gid": s.st_gid,
            "size": s.st_size, "blocks": s.st_blocks, "rdev": s.st_rdev,
            "atime": str(s.st_atime_ns), "mtime": str(s.st_mtime_ns), "ctime": str(s.st_ctime_ns)}

def _plain(o):
    """JSON-able copy: bytes become latin-1 text (also as keys), tuples lists."""
    if isinstance(o, bytes):
        return o.decode("latin1")
    if isinstance(o, dict):
        return {_plain(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    return o

def fd_read(fd, n=1 << 20, off=0):
    return os.pread(fd, n, off).decode("latin1")
`;

const PY_EPILOGUE = `\nsys.stdout.write("\\n" + json.dumps(_plain(out)) + "\\n")\n`;

/**
 * Runs `script` after PY_PRELUDE and returns the JSON of `out`. Throws when python fails (an uncaught
 * exception, a timeout): errno results belong in `out` via `attempt`.
 */
export async function py<T = Record<string, unknown>>(
  script: string,
  args: ReadonlyArray<string | Buffer> = [],
  opts: ChildOptions = {},
): Promise<T> {
  const code = `${PY_PRELUDE}\n${script}\n${PY_EPILOGUE}`;
  const argv = args.map((a) => (typeof a === "string" ? a : `hex:${a.toString("hex")}`));
  const r = await runChild(PYTHON, ["-c", code, ...argv], { timeoutMs: 30_000, ...opts });
  if (r.status !== 0) {
    const why = r.timedOut ? "timed out" : `exited ${r.status ?? r.signal}`;
    throw new Error(`python ${why}:\n${r.stderr.trim()}\n--- script:\n${script}`);
  }
  const lines = r.stdout.trimEnd().split("\n");
  return JSON.parse(lines[lines.length - 1] ?? "{}") as T;
}
