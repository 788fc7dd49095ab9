/**
 * One POSIX behaviour = one case: a layout (what is in the lower and upper branch before the case runs)
 * and a function that exercises the behaviour through `env.root` and asserts what POSIX (Linux) says.
 * The same function runs on every target (see targets.ts).
 *
 * `differs` documents where a union legitimately (or knowingly) behaves otherwise: on such a target a
 * failure is recorded and shown, not failed. For unionfs-ts an entry names a known bug (see
 * docs/posix-status.md); with POSIX_STRICT=1 those fail as well, to check a fix.
 */
import type { Env, Layout, TargetName } from "./targets";

export interface PosixCase {
  /** The behaviour, as a sentence. */
  name: string;
  /** Short area label for grouping in the report: rename, links, times, perms, names, xattr, io, misc. */
  area: string;
  layout?: Layout;
  run(env: Env): Promise<void>;
  /** Documented differences: target → why it may fail there. */
  differs?: Partial<Record<Exclude<TargetName, "plain">, string>>;
  /** Returns a reason to skip on every target (a missing tool), or undefined. */
  requires?: () => string | undefined;
  /** Per-test time limit in ms (default 30 s). */
  timeoutMs?: number;
}

export function posixCase(c: PosixCase): PosixCase {
  return c;
}
