/**
 * uid/gid mapping between what is stored on disk and what the mount shows (fuse-overlayfs
 * `uidmapping=DISK:SHOWN:LEN[:DISK2:SHOWN2:LEN2…]`), and squashing.
 *
 * Invariants: with no ranges the mapping is the identity; an id with no range shows as the overflow id
 * 65534 and is stored as 65534; squashing replaces every shown id, and does not change what is stored.
 */
import { UsageError } from "../errors";

export interface IdRange {
  disk: number;
  shown: number;
  count: number;
}

export const OVERFLOW_ID = 65534;

/**
 * Parses "0:1000:1:1:110000:65536" (triples separated by ':' — commas too; podman writes a leading ':',
 * so empty fields are skipped).
 */
export function parseIdRanges(spec: string, what: string): IdRange[] {
  const nums = spec
    .split(/[:,]/)
    .filter((s) => s.length > 0)
    .map((s) => Number(s));
  if (nums.length === 0 || nums.length % 3 !== 0 || nums.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new UsageError(`bad ${what} '${spec}' (expected ID:MAPPED-ID:LEN[:…])`);
  }
  const out: IdRange[] = [];
  for (let i = 0; i < nums.length; i += 3) {
    out.push({ disk: nums[i] as number, shown: nums[i + 1] as number, count: nums[i + 2] as number });
  }
  return out;
}

export class IdMap {
  constructor(
    private readonly ranges: readonly IdRange[] = [],
    private readonly squash?: number,
  ) {}

  get identity(): boolean {
    return this.ranges.length === 0 && this.squash === undefined;
  }

  /** The id shown for an id stored on disk. */
  toShown(disk: number): number {
    if (this.squash !== undefined) return this.squash;
    if (this.ranges.length === 0) return disk;
    for (const r of this.ranges)
      if (disk >= r.disk && disk < r.disk + r.count) return r.shown + (disk - r.disk);
    return OVERFLOW_ID;
  }

  /** The id stored on disk for an id given through the mount (a caller or a chown). */
  toDisk(shown: number): number {
    if (this.ranges.length === 0) return shown;
    for (const r of this.ranges)
      if (shown >= r.shown && shown < r.shown + r.count) return r.disk + (shown - r.shown);
    return OVERFLOW_ID;
  }
}
