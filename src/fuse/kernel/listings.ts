/**
 * Directory listings for READDIR without a directory handle. The kernel offers zero-message opendir
 * (FUSE_NO_OPENDIR_SUPPORT): once OPENDIR answers ENOSYS it never sends OPENDIR or RELEASEDIR again,
 * and caches every listing (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR), so a walk of a known tree costs no
 * round trip per directory. READDIR then comes with fh 0 and there is no per-open snapshot.
 *
 * Invariants:
 * - A node's snapshot is ".", "..", then the core's entries (sorted by name, see unionfs/listing.ts).
 *   It is taken afresh when the namespace generation moved since it was taken (any request that may
 *   change a name bumps it, see dispatch.ts), and dropped once a reader reached its end.
 * - Offsets name an entry, not a position: each snapshot owns its own range of offsets, never reused
 *   in the session (so an offset outlives a dropped snapshot without meaning another entry). An
 *   offset from an older snapshot resumes after that entry's name in the current one, so a name that
 *   stays is listed exactly once however the directory changes between two READDIRs (a reader that
 *   deletes what it reads, like `shutil.rmtree`). An offset of a snapshot no longer known restarts
 *   after "." and "..": names may repeat then, none is lost.
 * - Bounded: at most MAX_NODES nodes keep snapshots (least recently read dropped first), and each node
 *   keeps its last MAX_HISTORY ones.
 */
import { LRUCache } from "lru-cache";
import type { DirEntry } from "../../unionfs/types";

const MAX_NODES = 1024;
const MAX_HISTORY = 4;
/** Slots before the core's entries: "." and "..". */
export const DOTS = 2;

export interface Snapshot {
  entries: readonly DirEntry[];
  /** Offset carried by slot i is `base + i + 1`. */
  base: number;
  generation: number;
}

interface NodeListings {
  /** Newest last. */
  snapshots: Snapshot[];
}

/** Where a READDIR resumes: slot `start` of `snap`. */
export interface Window {
  snap: Snapshot;
  start: number;
}

function slots(s: Snapshot): number {
  return s.entries.length + DOTS;
}

/** Number of entries whose name sorts at or before `name` (entries are sorted by byte order). */
function countUpTo(entries: readonly DirEntry[], name: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((entries[mid] as DirEntry).name <= name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class DirListings {
  private readonly nodes = new LRUCache<number, NodeListings>({ max: MAX_NODES });
  private generation = 0;
  private nextBase = 0;

  /** Something may have changed a name somewhere: later READDIRs take fresh snapshots. */
  changed(): void {
    this.generation++;
  }

  /** The window a READDIR of `nodeid` at `offset` reads; `list()` makes a fresh listing when needed. */
  window(nodeid: number, offset: number, list: () => readonly DirEntry[]): Window {
    let node = this.nodes.get(nodeid);
    if (node === undefined) {
      node = { snapshots: [] };
      this.nodes.set(nodeid, node);
    }
    const cur = this.current(node, list);
    return { snap: cur, start: offset === 0 ? 0 : this.resume(node, cur, offset) };
  }

  /** The reader of `nodeid` got to the end: its snapshots are no longer needed. */
  ended(nodeid: number): void {
    this.nodes.delete(nodeid);
  }

  private current(node: NodeListings, list: () => readonly DirEntry[]): Snapshot {
    const last = node.snapshots[node.snapshots.length - 1];
    if (last !== undefined && last.generation === this.generation) return last;
    const entries = list();
    const snap = { entries, base: this.nextBase, generation: this.generation };
    this.nextBase += slots(snap) + 1;
    node.snapshots.push(snap);
    if (node.snapshots.length > MAX_HISTORY) node.snapshots.shift();
    return snap;
  }

  private resume(node: NodeListings, cur: Snapshot, offset: number): number {
    if (offset > cur.base && offset <= cur.base + slots(cur)) return offset - cur.base;
    const old = node.snapshots.find((s) => offset > s.base && offset <= s.base + slots(s));
    if (old === undefined) return DOTS;
    const done = offset - old.base; // slots of `old` already returned
    if (done <= DOTS) return done;
    const last = old.entries[done - DOTS - 1] as DirEntry;
    return DOTS + countUpTo(cur.entries, last.name);
  }
}
