/**
 * How a failed command is reported: the text for stderr and the exit status.
 *
 * Invariants: a usage error is its one line and status 2; any other error is the first line of its
 * message and status 1, followed by the stack only with --verbose or when the error is not an errno
 * one (a defect, not the user's mistake).
 */
import { codeOf, UsageError } from "../errors";

export function errorReport(err: unknown, verbose: boolean): { status: number; text: string } {
  if (err instanceof UsageError) return { status: 2, text: `unionfs-ts: ${err.message}\n` };
  const message = err instanceof Error ? err.message : String(err);
  let text = `unionfs-ts: ${message.split("\n")[0]}\n`;
  if (verbose || codeOf(err) === undefined) text += `${(err as Error)?.stack ?? ""}\n`;
  return { status: 1, text };
}
