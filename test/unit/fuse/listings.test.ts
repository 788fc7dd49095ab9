/**
 * Handle-less directory listings: offsets are name cookies, so they survive changes to the directory
 * between READDIRs and any number of readers at once.
 */
import { strict as assert } from "node:assert";
import { fillDirents, type Window as SlotWindow } from "../../../src/fuse/kernel/dirents";
import {
  DirListings,
  DOTS,
  nameCookie,
  offsetOfSlot,
  snapshotOf,
  type Window,
} from "../../../src/fuse/kernel/listings";
import type { DirEntry } from "../../../src/unionfs/types";

const entries = (...names: string[]): DirEntry[] => names.map((name) => ({ name, type: 0o100000, ino: 1n }));

/** Names a reader gets from `w` reading `n` slots, and the offset it would send next. */
function read(w: Window, n: number): { names: string[]; next: number; slots: number } {
  const names: string[] = [];
  let i = w.start;
  const end = w.snap.entries.length + DOTS;
  for (; i < w.start + n && i < end; i++) {
    if (i >= DOTS) names.push((w.snap.entries[i - DOTS] as DirEntry).name);
  }
  return { names, next: i === w.start ? 0 : offsetOfSlot(w.snap, i - 1), slots: i - w.start };
}

/** Reads the whole listing of node `id` `n` slots at a time, calling `between` after each batch. */
function readAll(
  l: DirListings,
  id: number,
  list: () => DirEntry[],
  n: number,
  between = (): void => {},
): string[] {
  const seen: string[] = [];
  let offset = 0;
  for (;;) {
    const got = read(l.window(id, offset, list), n);
    if (got.slots === 0) {
      l.ended(id);
      return seen;
    }
    seen.push(...got.names);
    offset = got.next;
    between();
    if (seen.length > 10_000) assert.fail("does not end");
  }
}

describe("handle-less dir listings", () => {
  it("keeps one snapshot while nothing changes, and resumes by offset", () => {
    const l = new DirListings();
    let made = 0;
    const list = (): DirEntry[] => (made++, entries("a", "b", "c"));
    const first = read(l.window(5, 0, list), 3);
    assert.equal(first.names.length, 1);
    const rest = read(l.window(5, first.next, list), 10);
    assert.deepEqual([...first.names, ...rest.names].sort(), ["a", "b", "c"]);
    assert.equal(made, 1);
  });

  it("gives '.' offset 1, '..' offset 2 and every name a cookie above them", () => {
    const snap = snapshotOf(entries("x", "y"));
    assert.equal(offsetOfSlot(snap, 0), 1);
    assert.equal(offsetOfSlot(snap, 1), 2);
    const cookies = new Set<number>();
    for (let i = 0; i < 100_000; i++) {
      const c = nameCookie(`f${i}`);
      assert.ok(c >= 3 && c <= Number.MAX_SAFE_INTEGER, String(c));
      cookies.add(c);
    }
    assert.equal(cookies.size, 100_000, "no collision among 100,000 names");
    assert.equal(nameCookie(""), nameCookie(""));
  });

  it("regression: a reader that deletes what it read lists every remaining name once (rmtree)", () => {
    const l = new DirListings();
    let names = ["a", "b", "c", "d", "e", "f"];
    const list = (): DirEntry[] => entries(...names);
    let last: string[] = [];
    const seen = readAll(l, 9, list, 3, () => undefined);
    assert.deepEqual(seen.sort(), ["a", "b", "c", "d", "e", "f"]);
    const again: string[] = [];
    let offset = 0;
    for (;;) {
      const got = read(l.window(9, offset, list), 3);
      if (got.slots === 0) break;
      again.push(...got.names);
      last = got.names;
      names = names.filter((n) => !last.includes(n)); // deleted right after reading
      l.changed();
      offset = got.next;
    }
    assert.deepEqual(again.sort(), ["a", "b", "c", "d", "e", "f"]);
  });

  it("names added or removed meanwhile are seen or not; the others exactly once", () => {
    const l = new DirListings();
    const stable = Array.from({ length: 50 }, (_, i) => `s${i}`);
    let churn: string[] = [];
    let n = 0;
    const list = (): DirEntry[] => entries(...stable, ...churn);
    const seen = readAll(l, 2, list, 7, () => {
      churn = [`c${n++}`, `c${n++}`, ...churn.slice(1)];
      l.changed();
    });
    for (const name of stable) assert.equal(seen.filter((x) => x === name).length, 1, name);
    assert.equal(new Set(seen).size, seen.length, "no name twice");
  });

  it("regression: concurrent listings of one directory return each name once", () => {
    // Two readers of one node, interleaved; the first to reach the end drops the snapshot.
    const l = new DirListings();
    const names = Array.from({ length: 30 }, (_, i) => `f${i + 1}`);
    const list = (): DirEntry[] => entries(...names);
    const readers = [
      { offset: 0, seen: [] as string[], done: false },
      { offset: 0, seen: [] as string[], done: false },
    ];
    const sizes = [4, 11];
    while (readers.some((r) => !r.done)) {
      readers.forEach((r, k) => {
        if (r.done) return;
        const got = read(l.window(1, r.offset, list), sizes[k] as number);
        if (got.slots === 0) {
          r.done = true;
          l.ended(1);
          return;
        }
        r.seen.push(...got.names);
        r.offset = got.next;
      });
    }
    for (const r of readers) assert.deepEqual([...r.seen].sort(), [...names].sort());
  });

  it("an offset outlives its snapshot: a reader resumes after a drop with no repeats", () => {
    const l = new DirListings();
    const list = (): DirEntry[] => entries("a", "b", "c", "d");
    const one = read(l.window(3, 0, list), DOTS + 2);
    l.ended(3);
    const two = read(l.window(3, one.next, list), 10);
    assert.deepEqual([...one.names, ...two.names].sort(), ["a", "b", "c", "d"]);
  });

  it("never splits a run of one offset between two replies (a cookie collision)", () => {
    // Slots 0..5 with offsets 1, 2, 9, 9, 9, 12: a reply with room for four entries stops before the run.
    const offsets = [1, 2, 9, 9, 9, 12];
    const names = ["x1", "x2", "y1", "y2", "y3", "z1"];
    const win = (start: number): SlotWindow => ({
      slotAt: (i) => (i < names.length ? { name: names[i] as string, ino: 1n, type: 8 } : undefined),
      start,
      offsetOf: (i) => offsets[i] as number,
    });
    const body = fillDirents(win(0), 32 * 4);
    assert.equal(body.length, 32 * 2, "the run of 9s goes out whole in the next reply");
    const body2 = fillDirents(win(2), 32 * 2);
    assert.equal(body2.length, 32 * 2, "a run that starts the reply may be split (nothing better)");
  });
});
