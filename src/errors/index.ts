/**
 * errno errors: the only error type the union core throws on purpose.
 *
 * Invariants:
 * - Every error carries a Node-style `code` ("ENOENT", "EXDEV" …) and a positive `errno` number, exactly
 *   like the errors Node's own `fs` calls throw, so callers treat both the same way.
 * - Only ENOENT and ENOTDIR from a lower layer mean "look further down" (`isAbsent`).
 * - `toErrno` is the single place an unknown error becomes EIO; transports call it at their one catch site.
 * - `reported` marks an errno error worth a log line (`report`); its errno is kept.
 * - Bad input from the user is a `UsageError` instead: one line for the CLI to print as is, nothing
 *   changed.
 */
import { constants } from "node:os";

const errnoByCode = constants.errno as Record<string, number>;

/** Bad input from the user: printed as one line, exit code 2, nothing changed. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export class FsError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string | undefined;
  /** A failure the user did not cause and should find in the daemon's log (a failed copy-up). */
  report = false;

  constructor(code: string, message?: string, syscall?: string) {
    super(message ? `${code}: ${message}` : code);
    this.name = "FsError";
    this.code = code;
    this.errno = errnoOf(code);
    this.syscall = syscall;
  }
}

/**
 * Throws-friendly constructor: `throw fsError("ENOENT", path)`. These are expected outcomes (a lookup
 * that misses, a name that exists) on hot paths, so no stack trace is captured: capturing one costs more
 * than the syscall that found the answer.
 */
export function fsError(code: string, message?: string, syscall?: string): FsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new FsError(code, message, syscall);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Positive errno number for a code such as "ENOENT"; EIO for codes this platform does not know. */
export function errnoOf(code: string): number {
  return errnoByCode[code] ?? (errnoByCode.EIO as number);
}

/** The code ("ENOSPC") of a positive errno number; "EIO" for a number this platform does not name. */
export function codeOfErrno(errno: number): string {
  for (const [code, n] of Object.entries(errnoByCode)) if (n === errno) return code;
  return "EIO";
}

/** Anything thrown, as a log line shows it: an error's stack (else its message), or its text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/** Error code of anything thrown, or undefined when it carries none. */
export function codeOf(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string" && code.startsWith("E")) return code;
  }
  return undefined;
}

/** True for the two codes that mean "this layer does not have the name": look further down. */
export function isAbsent(err: unknown): boolean {
  const code = codeOf(err);
  return code === "ENOENT" || code === "ENOTDIR";
}

/** True for "this filesystem has no extended attributes (of that namespace)". */
export function isUnsupported(err: unknown): boolean {
  const code = codeOf(err);
  return code === "EOPNOTSUPP" || code === "ENOTSUP";
}

/**
 * Positive errno for a thrown value. Known errno errors map to their number; anything else is reported
 * through `onUnknown` (so it is logged, never swallowed) and becomes EIO.
 */
export function toErrno(err: unknown, onUnknown?: (err: unknown) => void): number {
  const code = codeOf(err);
  if (code !== undefined && code in errnoByCode) return errnoByCode[code] as number;
  if (typeof err === "object" && err !== null && "errno" in err) {
    const n = (err as { errno: unknown }).errno;
    if (typeof n === "number" && n !== 0) return Math.abs(n);
  }
  onUnknown?.(err);
  return errnoByCode.EIO as number;
}

/**
 * An errno error to be logged where it is answered (a copy-up that failed with ENOSPC, EIO, or ENOENT
 * because the work dir was removed): same code, `context` in front of its message. Anything else is
 * returned as it is (an unknown error is logged anyway).
 */
export function reported(err: unknown, context: string): unknown {
  const code = codeOf(err);
  if (code === undefined || !(code in errnoByCode)) return err;
  const e = new FsError(code, `${context}: ${err instanceof Error ? err.message : String(err)}`);
  e.report = true;
  return e;
}

/** Whether `err` should be logged where it is answered (see `reported`). */
export function isReported(err: unknown): boolean {
  return err instanceof FsError && err.report;
}
