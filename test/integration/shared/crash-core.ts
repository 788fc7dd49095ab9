/**
 * A union core for the shared-server tests (UNIONFS_TS_TEST_FACTORY=<this module>#crashOnName): the real
 * core, except that getattr or lookup of "/crash-now" ends the serving thread at once, as a fatal error
 * in the thread would (process.exit in a worker thread ends that thread only, with the given code).
 */
import { createUnion } from "../../../src/unionfs";
import type { UnionConfig, UnionOps } from "../../../src/unionfs";

export const CRASH_NAME = "crash-now";
export const CRASH_CODE = 70;

export function crashOnName(config: UnionConfig): UnionOps {
  const ops = createUnion(config);
  const crashAt = (p: string): void => {
    if (p === `/${CRASH_NAME}`) process.exit(CRASH_CODE);
  };
  const getattr = ops.getattr.bind(ops);
  ops.getattr = (p, fh) => {
    crashAt(p);
    return getattr(p, fh);
  };
  const lookup = ops.lookup?.bind(ops);
  if (lookup !== undefined) {
    ops.lookup = (p) => {
      crashAt(p);
      return lookup(p);
    };
  }
  return ops;
}
