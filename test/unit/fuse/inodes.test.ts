/**
 * The inode table: lookup counts, forget, rename moving subtrees, unlink orphaning; node ids derived from
 * inode numbers, generations, and finding forgotten nodes again (file handles).
 */
import { strict as assert } from "node:assert";
import { InodeTable } from "../../../src/fuse/kernel/inodes";
import { FIRST_EPHEMERAL_ID, Remembered, inoOfStableId, stableIdOf } from "../../../src/fuse/kernel/nodeids";

const DIR = 0o040755;
const FILE = 0o100644;

describe("fuse inode table", () => {
  let t: InodeTable;
  beforeEach(() => {
    t = new InodeTable();
  });

  it("has the root at id 1, path /", () => {
    assert.equal(t.path(1), "/");
    assert.equal(t.childPath(1, "a"), "/a");
    assert.equal(t.size, 1);
  });

  it("reuses a node for the same name, counting lookups, and drops it at zero", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 10n });
    const again = t.lookup(1, "a", { mode: FILE, ino: 10n });
    assert.equal(again.id, a.id);
    assert.equal(again.lookups, 2);
    assert.notEqual(a.id, 1);
    t.forget(a.id, 1);
    assert.equal(t.path(a.id), "/a");
    t.forget(a.id, 1);
    assert.equal(t.has(a.id), false);
    assert.throws(() => t.path(a.id), { code: "ESTALE" });
    const fresh = t.lookup(1, "a", { mode: FILE, ino: 10n });
    assert.equal(fresh.id, a.id, "the id is the inode number's, again");
  });

  it("never forgets the root", () => {
    t.forget(1, 100);
    assert.equal(t.path(1), "/");
  });

  it("derives paths from parents and moves subtrees on rename", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 1n });
    const e = t.lookup(d.id, "e", { mode: DIR, ino: 2n });
    const f = t.lookup(e.id, "f", { mode: FILE, ino: 3n });
    assert.equal(t.path(f.id), "/d/e/f");
    t.renamed(1, "d", 1, "moved", false);
    assert.equal(t.path(f.id), "/moved/e/f");
    t.renamed(e.id, "f", 1, "top", false);
    assert.equal(t.path(f.id), "/top");
    assert.equal(t.lookup(1, "top", { mode: FILE, ino: 3n }).id, f.id);
  });

  it("detaches a replaced rename target, which keeps only a stale path", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 1n });
    const b = t.lookup(1, "b", { mode: FILE, ino: 2n });
    t.renamed(1, "a", 1, "b", false);
    assert.equal(t.path(a.id), "/b");
    assert.throws(() => t.path(b.id), { code: "ENOENT" });
    assert.equal(t.path(b.id, true), "/b");
    assert.equal(t.isAttached(b.id), false);
    assert.equal(t.lookup(1, "b", { mode: FILE, ino: 1n }).id, a.id);
    t.forget(b.id, 1);
    assert.equal(t.has(b.id), false);
    assert.equal(
      t.lookup(1, "b", { mode: FILE, ino: 1n }).id,
      a.id,
      "forgetting the orphan leaves the new owner of the name alone",
    );
  });

  it("swaps nodes on RENAME_EXCHANGE", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 1n });
    const d = t.lookup(1, "d", { mode: DIR, ino: 2n });
    const b = t.lookup(d.id, "b", { mode: DIR, ino: 3n });
    t.renamed(1, "a", d.id, "b", true);
    assert.equal(t.path(a.id), "/d/b");
    assert.equal(t.path(b.id), "/a");
  });

  it("orphans unlinked nodes: a new lookup of the name gets a fresh node", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 1n });
    t.removed(1, "a");
    assert.throws(() => t.path(a.id), { code: "ENOENT" });
    assert.equal(t.has(a.id), true, "alive until forgotten");
    const a2 = t.lookup(1, "a", { mode: FILE, ino: 4n });
    assert.notEqual(a2.id, a.id);
    t.forget(a.id, 1);
    assert.equal(t.path(a2.id), "/a");
  });

  it("treats everything under a removed directory as removed", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 1n });
    const f = t.lookup(d.id, "f", { mode: FILE, ino: 2n });
    t.removed(1, "d");
    assert.equal(t.isAttached(f.id), false);
    assert.throws(() => t.path(f.id), { code: "ENOENT" });
  });

  it("replaces a node whose file type changed", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 1n });
    const b = t.lookup(1, "a", { mode: DIR, ino: 1n });
    assert.notEqual(a.id, b.id);
    assert.equal(t.isAttached(a.id), false);
  });

  it("keeps a forgotten directory linked while it has children, and revives it", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 11n });
    const id = d.id;
    const f = t.lookup(d.id, "f", { mode: FILE, ino: 2n });
    t.forget(d.id, 1);
    assert.equal(t.has(d.id), false);
    assert.equal(t.path(f.id), "/d/f");
    t.renamed(1, "d", 1, "e", false);
    assert.equal(t.path(f.id), "/e/f", "the child still follows its parent");
    const again = t.lookup(1, "e", { mode: DIR, ino: 11n });
    assert.equal(again.id, d.id);
    assert.equal(again.id, id);
    assert.equal(t.has(d.id), true);
    t.forget(f.id, 1);
    t.forget(d.id, 1);
    assert.equal(t.size, 1);
  });

  it("prunes dead directories once their last child is forgotten", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 1n });
    const f = t.lookup(d.id, "f", { mode: FILE, ino: 2n });
    t.forget(d.id, 1);
    t.forget(f.id, 1);
    assert.equal(t.size, 1);
    assert.notEqual(t.lookup(1, "d", { mode: DIR, ino: 1n }), d, "a new node");
  });

  it("lists the other live names of a hard-linked inode as aliases, as links come and go", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 7n });
    assert.deepEqual(t.aliases(a.id), []);
    const b = t.lookup(1, "b", { mode: FILE, ino: 7n });
    const c = t.lookup(1, "c", { mode: FILE, ino: 7n });
    assert.deepEqual(t.aliases(a.id), [b.id, c.id]);
    t.forget(b.id, 1);
    assert.deepEqual(t.aliases(a.id), [c.id]);
    t.forget(c.id, 1);
    assert.deepEqual(t.aliases(a.id), []);
    const d = t.lookup(1, "d", { mode: FILE, ino: 7n });
    assert.deepEqual(t.aliases(d.id), [a.id]);
    t.forget(d.id, 1);
    const e = t.lookup(1, "d", { mode: FILE, ino: 8n }); // the kernel forgot d; the name now holds another file
    assert.deepEqual(t.aliases(a.id), []);
    assert.deepEqual(t.aliases(e.id), []);
  });

  it("finds aliases whichever name holds the inode number's stable id, and once that one is forgotten", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 7n }); // the stable id of 7
    const b = t.lookup(1, "b", { mode: FILE, ino: 7n });
    const c = t.lookup(1, "c", { mode: FILE, ino: 7n });
    assert.deepEqual(t.aliases(b.id).sort(), [a.id, c.id].sort());
    t.forget(a.id, 1);
    assert.deepEqual(t.aliases(b.id), [c.id]);
    assert.deepEqual(t.aliases(c.id), [b.id]);
    const a2 = t.lookup(1, "a", { mode: FILE, ino: 7n });
    assert.equal(a2.id, a.id, "the stable id is free again");
    assert.deepEqual(t.aliases(a2.id).sort(), [b.id, c.id].sort());
    assert.deepEqual(t.aliases(c.id).sort(), [a2.id, b.id].sort());
  });

  it("regression: a live node keeps the inode number it was first reported with (one number per kernel inode)", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 7n });
    assert.equal(t.pin(d.id, 9n), 7n, "getattr answers the pinned number");
    assert.equal(t.lookup(1, "d", { mode: DIR, ino: 9n }).ino, 7n, "a lookup of the live node too");
    assert.equal(t.pin(1, 5n), 5n, "the root gets its number from its first getattr");
    assert.equal(t.pin(1, 6n), 5n);
    t.forget(d.id, 2);
    assert.equal(
      t.lookup(1, "d", { mode: DIR, ino: 9n }).ino,
      9n,
      "once forgotten, the kernel takes the new number",
    );
  });

  it("gives a node the stable id of its inode number, and other names of it ephemeral ids", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 1234n });
    assert.equal(a.id, 1234);
    const b = t.lookup(1, "b", { mode: FILE, ino: 1234n });
    assert.ok(b.id >= FIRST_EPHEMERAL_ID, "a hard link's second name");
    t.forget(a.id, 1);
    t.forget(b.id, 1);
    assert.equal(t.lookup(1, "b", { mode: FILE, ino: 1234n }).id, 1234, "free again once forgotten");
  });

  it("keeps a live node's generation in every entry, and takes a new one when it comes back", () => {
    const first = { mode: FILE, ino: 77n, gen: 5 };
    const a = t.lookup(1, "a", first);
    assert.equal(first.gen, 5);
    const changed = { mode: FILE, ino: 77n, gen: 9 };
    t.lookup(1, "a", changed);
    assert.equal(changed.gen, 5, "the kernel never sees two generations for one node id");
    t.forget(a.id, 2);
    const back = { mode: FILE, ino: 77n, gen: 9 };
    t.lookup(1, "a", back);
    assert.equal(back.gen, 9);
  });

  it("remembers where a forgotten node was, through forgotten parents, and places it again", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 20n });
    const e = t.lookup(d.id, "e", { mode: DIR, ino: 21n });
    const f = t.lookup(e.id, "f", { mode: FILE, ino: 22n });
    t.renamed(d.id, "e", 1, "e2", false);
    for (const n of [f, e, d]) t.forget(n.id, 1);
    assert.equal(t.size, 1);
    const route = t.routeTo(22);
    assert.ok(route);
    assert.equal(t.routePath(route), "/e2/f");
    const placed = t.place(route, 22, { mode: FILE, ino: 22n, gen: 3 });
    assert.equal(placed?.id, 22);
    assert.equal(t.path(22), "/e2/f");
    assert.equal(t.has(21), false, "the directories on the way are plain links");
    const up = t.lookupParent(22, () => ({ mode: DIR, ino: 21n }));
    assert.equal(up.node.id, 21, "and a lookup of .. revives them under their ids");
    assert.equal(t.lookup(1, "e2", { mode: DIR, ino: 21n }).id, 21);
  });

  it("forgets the whereabouts of removed nodes, and does not place over another live node", () => {
    const a = t.lookup(1, "a", { mode: FILE, ino: 30n });
    t.forget(a.id, 1);
    assert.ok(t.routeTo(30));
    t.lookup(1, "a", { mode: FILE, ino: 30n });
    t.removed(1, "a");
    t.forget(30, 1);
    assert.equal(t.routeTo(30), undefined);
    const b = t.lookup(1, "b", { mode: FILE, ino: 31n });
    const other = t.lookup(1, "b2", { mode: FILE, ino: 31n });
    t.forget(b.id, 1);
    t.removed(1, "b");
    t.renamed(1, "b2", 1, "b", false);
    const root = t.routeTo(1);
    assert.ok(root);
    const route = { ...root, steps: [{ id: 31, name: "b", ino: 31n }] };
    assert.equal(t.place(route, 31, { mode: FILE, ino: 31n }), undefined, "b is live as " + other.id);
  });

  it("answers .. with the parent, and the root for a top-level node; ENOENT once removed", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 40n });
    assert.equal(t.lookupParent(d.id, () => ({ mode: DIR, ino: 2n })).node.id, 1);
    const f = t.lookup(d.id, "f", { mode: FILE, ino: 41n });
    assert.equal(t.lookupParent(f.id, () => ({ mode: DIR, ino: 40n })).node.id, d.id);
    assert.equal(t.get(d.id).lookups, 2);
    t.removed(1, "d");
    assert.throws(() => t.lookupParent(f.id, () => ({ mode: DIR, ino: 40n })), { code: "ENOENT" });
  });

  it("releases every node's slot once the kernel forgot it, removed parents included", () => {
    const d = t.lookup(1, "d", { mode: DIR, ino: 50n });
    const e = t.lookup(d.id, "e", { mode: DIR, ino: 51n });
    const f = t.lookup(e.id, "f", { mode: FILE, ino: 52n });
    t.removed(1, "d"); // d and e stay: f is live and its stale path goes through them
    t.forget(d.id, 1);
    t.forget(e.id, 1);
    assert.equal(t.path(f.id, true), "/d/e/f");
    t.forget(f.id, 1);
    assert.equal(t.slots, 1, "only the root is left");
  });

  it("keeps its slots bounded under random lookups, renames, removals and forgets", () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const held = new Map<number, number>(); // id -> lookups the "kernel" holds
    const dirs = [1];
    const names = ["a", "b", "c", "d"];
    let ino = 100n;
    for (let step = 0; step < 5000; step++) {
      const parent = dirs[rand(dirs.length)] as number;
      const name = names[rand(names.length)] as string;
      if (!t.has(parent) || !t.isAttached(parent)) continue;
      const op = rand(10);
      if (op < 5) {
        const dir = rand(2) === 0;
        const known = t.childId(parent, name);
        const node = t.lookup(parent, name, {
          mode: dir ? DIR : FILE,
          ino: known === undefined ? ino++ : ino,
        });
        held.set(node.id, (held.get(node.id) ?? 0) + 1);
        if (dir) dirs.push(node.id);
      } else if (op < 7) {
        t.removed(parent, name);
      } else if (op < 8) {
        const to = dirs[rand(dirs.length)] as number;
        const from = t.childPath(parent, name);
        if (t.has(to) && t.isAttached(to) && !`${t.path(to)}/`.startsWith(`${from}/`)) {
          t.renamed(parent, name, to, names[rand(names.length)] as string, false);
        }
      } else {
        const ids = [...held.keys()];
        const id = ids[rand(ids.length)];
        if (id !== undefined) {
          t.forget(id, held.get(id) as number);
          held.delete(id);
        }
      }
      assert.ok(t.slots <= 1 + held.size * 16, `step ${step}: ${t.slots} slots for ${held.size} live nodes`);
    }
    for (const [id, n] of held) t.forget(id, n);
    assert.equal(t.size, 1);
    assert.equal(t.slots, 1, "every slot but the root's is released");
  });
});

describe("fuse node ids", () => {
  it("maps inode numbers (with a layer tag in the top byte) to ids below 2^52 and back", () => {
    for (const ino of [2n, 12345n, (1n << 45n) - 1n, (3n << 56n) ^ 99n, (127n << 56n) | 5n]) {
      const id = stableIdOf(ino);
      assert.ok(id !== undefined && id < FIRST_EPHEMERAL_ID && Number.isSafeInteger(id), String(ino));
      assert.equal(inoOfStableId(id), ino);
    }
    assert.equal(stableIdOf((3n << 56n) ^ 99n), 3 * 2 ** 45 + 99);
  });

  it("has no stable id for 0, 1 (the root's id), huge numbers and tags of 128 and up", () => {
    for (const ino of [0n, 1n, 1n << 45n, 128n << 56n, (1n << 64n) - 1n]) {
      assert.equal(stableIdOf(ino), undefined, String(ino));
    }
    for (const id of [0, 1, FIRST_EPHEMERAL_ID, FIRST_EPHEMERAL_ID + 7, 2.5]) {
      assert.equal(inoOfStableId(id), undefined, String(id));
    }
  });

  it("remembers a bounded number of whereabouts, the most recent ones", () => {
    const r = new Remembered(4);
    const at = (name: string) => ({ parent: 1, name, ino: 5n });
    r.set(5, at("a"));
    r.set(6, at("b")); // the young half is full: 5 and 6 become old
    r.set(5, at("a2"));
    assert.equal(r.get(5)?.name, "a2");
    assert.equal(r.get(6)?.name, "b");
    assert.equal(r.size, 2);
    r.set(7, at("c")); // 5 (again) and 7 are old now, 6 is gone
    assert.equal(r.get(6), undefined);
    assert.equal(r.get(5)?.name, "a2");
    r.delete(5);
    assert.equal(r.get(5), undefined);
    for (let i = 100; i < 200; i++) r.set(i, at("x"));
    assert.ok(r.size <= 4);
    assert.ok(r.get(199) && r.get(198), "the last half of the bound stays");
  });
});
