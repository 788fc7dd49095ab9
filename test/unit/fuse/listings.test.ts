/** Handle-less directory listings: offsets that survive changes to the directory between READDIRs. */
import { strict as assert } from "node:assert";
import { DirListings, DOTS } from "../../../src/fuse/kernel/listings";
import type { Window } from "../../../src/fuse/kernel/listings";
import type { DirEntry } from "../../../src/unionfs/types";

const entries = (...names: string[]): DirEntry[] => names.map((name) => ({ name, type: 0o100000, ino: 1n }));

/** Names a reader gets from `w` reading `n` slots, and the offset it would send next. */
function read(w: Window, n: number): { names: string[]; next: number; slots: number } {
  const names: string[] = [];
  let i = w.start;
  for (; i < w.start + n && i < w.snap.entries.length + DOTS; i++) {
    if (i >= DOTS) names.push((w.snap.entries[i - DOTS] as DirEntry).name);
  }
  return { names, next: w.snap.base + i, slots: i - w.start };
}

describe("handle-less dir listings", () => {
  it("keeps one snapshot while nothing changes, and resumes by offset", () => {
    const l = new DirListings();
    let made = 0;
    const list = (): DirEntry[] => (made++, entries("a", "b", "c"));
    const first = read(l.window(5, 0, list), 3);
    assert.deepEqual(first.names, ["a"]);
    const rest = read(l.window(5, first.next, list), 10);
    assert.deepEqual(rest.names, ["b", "c"]);
    assert.equal(made, 1);
  });

  it("regression: a reader that deletes what it read lists every remaining name once (rmtree)", () => {
    const l = new DirListings();
    let names = ["a", "b", "c", "d", "e", "f"];
    const list = (): DirEntry[] => entries(...names);
    const seen: string[] = [];
    let offset = 0;
    for (;;) {
      const got = read(l.window(9, offset, list), 3);
      if (got.slots === 0) break; // an empty reply: end of directory
      seen.push(...got.names);
      names = names.filter((n) => !got.names.includes(n)); // deleted right after reading
      l.changed();
      offset = got.next;
      if (seen.length > 20) assert.fail("does not end");
    }
    assert.deepEqual(seen, ["a", "b", "c", "d", "e", "f"]);
  });

  it("names added or removed ahead of the reader are seen or not; the others exactly once", () => {
    const l = new DirListings();
    let names = ["b", "d", "f", "h"];
    const list = (): DirEntry[] => entries(...names);
    const one = read(l.window(2, 0, list), DOTS + 2);
    assert.deepEqual(one.names, ["b", "d"]);
    names = ["a", "b", "c", "e", "f", "h"]; // a, c before the reader's position; d gone; e ahead
    l.changed();
    assert.deepEqual(read(l.window(2, one.next, list), 10).names, ["e", "f", "h"]);
  });

  it("an offset of a dropped snapshot restarts after the dots: repeats, never losses", () => {
    const l = new DirListings();
    const list = (): DirEntry[] => entries("a", "b");
    const one = read(l.window(3, 0, list), DOTS + 1);
    l.ended(3);
    assert.deepEqual(read(l.window(3, one.next, list), 10).names, ["a", "b"]);
  });

  it("never hands out one offset for two snapshots", () => {
    const l = new DirListings();
    const a = l.window(1, 0, () => entries("x"));
    l.changed();
    const b = l.window(1, 0, () => entries("y"));
    const c = l.window(7, 0, () => entries("z"));
    const last = (w: Window): number => w.snap.base + w.snap.entries.length + DOTS;
    assert.ok(b.snap.base + 1 > last(a), "b's first offset comes after a's last");
    assert.ok(c.snap.base + 1 > last(b), "c's first offset comes after b's last");
  });
});
