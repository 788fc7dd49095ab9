/**
 * Union cores for the shared-server tests (UNIONFS_TS_TEST_FACTORY=<this module>#NAME): the real core,
 * except for one name.
 *
 * - `crashOnName`: getattr or lookup of "/crash-now" ends the serving thread at once, as a fatal error
 *   in the thread would (process.exit in a worker thread ends that thread only, with the given code).
 * - `failOnName`: getattr or lookup of "/crash-now" throws an error that is no errno, as a bug in the
 *   core would.
 */
import { createUnion } from "../../../src/unionfs";
import type { UnionConfig, UnionOps } from "../../../src/unionfs";

export const CRASH_NAME = "crash-now";
export const CRASH_CODE = 70;

function onName(config: UnionConfig, act: () => void): UnionOps {
  const ops = createUnion(config);
  const at = (p: string): void => {
    if (p === `/${CRASH_NAME}`) act();
  };
  const getattr = ops.getattr.bind(ops);
  ops.getattr = (p, fh) => {
    at(p);
    return getattr(p, fh);
  };
  const lookup = ops.lookup?.bind(ops);
  if (lookup !== undefined) {
    ops.lookup = (p) => {
      at(p);
      return lookup(p);
    };
  }
  return ops;
}

export function crashOnName(config: UnionConfig): UnionOps {
  return onName(config, () => process.exit(CRASH_CODE));
}

export function failOnName(config: UnionConfig): UnionOps {
  return onName(config, () => {
    throw new Error("injected: the core is broken");
  });
}
