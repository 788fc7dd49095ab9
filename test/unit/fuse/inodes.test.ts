/**
 * The inode table: lookup counts, forget, rename moving subtrees, unlink orphaning.
 */
import { strict as assert } from "node:assert";
import { InodeTable } from "../../../src/fuse/kernel/inodes";

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
    const a = t.lookup(1, "a", FILE, 10n);
    const again = t.lookup(1, "a", FILE, 10n);
    assert.equal(again, a);
    assert.equal(a.lookups, 2);
    assert.notEqual(a.id, 1);
    t.forget(a.id, 1);
    assert.equal(t.path(a.id), "/a");
    t.forget(a.id, 1);
    assert.equal(t.has(a.id), false);
    assert.throws(() => t.path(a.id), { code: "ESTALE" });
    const fresh = t.lookup(1, "a", FILE, 10n);
    assert.ok(fresh.id > a.id, "ids are never reused");
  });

  it("never forgets the root", () => {
    t.forget(1, 100);
    assert.equal(t.path(1), "/");
  });

  it("derives paths from parents and moves subtrees on rename", () => {
    const d = t.lookup(1, "d", DIR, 1n);
    const e = t.lookup(d.id, "e", DIR, 2n);
    const f = t.lookup(e.id, "f", FILE, 3n);
    assert.equal(t.path(f.id), "/d/e/f");
    t.renamed(1, "d", 1, "moved", false);
    assert.equal(t.path(f.id), "/moved/e/f");
    t.renamed(e.id, "f", 1, "top", false);
    assert.equal(t.path(f.id), "/top");
    assert.equal(t.lookup(1, "top", FILE, 3n), f);
  });

  it("detaches a replaced rename target, which keeps only a stale path", () => {
    const a = t.lookup(1, "a", FILE, 1n);
    const b = t.lookup(1, "b", FILE, 2n);
    t.renamed(1, "a", 1, "b", false);
    assert.equal(t.path(a.id), "/b");
    assert.throws(() => t.path(b.id), { code: "ENOENT" });
    assert.equal(t.path(b.id, true), "/b");
    assert.equal(t.isAttached(b.id), false);
    assert.equal(t.lookup(1, "b", FILE, 1n), a);
    t.forget(b.id, 1);
    assert.equal(t.has(b.id), false);
    assert.equal(
      t.lookup(1, "b", FILE, 1n),
      a,
      "forgetting the orphan leaves the new owner of the name alone",
    );
  });

  it("swaps nodes on RENAME_EXCHANGE", () => {
    const a = t.lookup(1, "a", FILE, 1n);
    const d = t.lookup(1, "d", DIR, 2n);
    const b = t.lookup(d.id, "b", DIR, 3n);
    t.renamed(1, "a", d.id, "b", true);
    assert.equal(t.path(a.id), "/d/b");
    assert.equal(t.path(b.id), "/a");
  });

  it("orphans unlinked nodes: a new lookup of the name gets a fresh node", () => {
    const a = t.lookup(1, "a", FILE, 1n);
    t.removed(1, "a");
    assert.throws(() => t.path(a.id), { code: "ENOENT" });
    assert.equal(t.has(a.id), true, "alive until forgotten");
    const a2 = t.lookup(1, "a", FILE, 4n);
    assert.notEqual(a2.id, a.id);
    t.forget(a.id, 1);
    assert.equal(t.path(a2.id), "/a");
  });

  it("treats everything under a removed directory as removed", () => {
    const d = t.lookup(1, "d", DIR, 1n);
    const f = t.lookup(d.id, "f", FILE, 2n);
    t.removed(1, "d");
    assert.equal(t.isAttached(f.id), false);
    assert.throws(() => t.path(f.id), { code: "ENOENT" });
  });

  it("replaces a node whose file type changed", () => {
    const a = t.lookup(1, "a", FILE, 1n);
    const b = t.lookup(1, "a", DIR, 1n);
    assert.notEqual(a.id, b.id);
    assert.equal(t.isAttached(a.id), false);
  });

  it("keeps a forgotten directory linked while it has children, and revives it", () => {
    const d = t.lookup(1, "d", DIR, 1n);
    const f = t.lookup(d.id, "f", FILE, 2n);
    t.forget(d.id, 1);
    assert.equal(t.has(d.id), false);
    assert.equal(t.path(f.id), "/d/f");
    t.renamed(1, "d", 1, "e", false);
    assert.equal(t.path(f.id), "/e/f", "the child still follows its parent");
    const again = t.lookup(1, "e", DIR, 1n);
    assert.equal(again.id, d.id);
    assert.equal(t.has(d.id), true);
    t.forget(f.id, 1);
    t.forget(d.id, 1);
    assert.equal(t.size, 1);
  });

  it("prunes dead directories once their last child is forgotten", () => {
    const d = t.lookup(1, "d", DIR, 1n);
    const f = t.lookup(d.id, "f", FILE, 2n);
    t.forget(d.id, 1);
    t.forget(f.id, 1);
    assert.equal(t.size, 1);
    assert.notEqual(t.lookup(1, "d", DIR, 1n).id, d.id);
  });

  it("lists the other live names of a hard-linked inode as aliases, as links come and go", () => {
    const a = t.lookup(1, "a", FILE, 7n);
    assert.deepEqual(t.aliases(a.id), []);
    const b = t.lookup(1, "b", FILE, 7n);
    const c = t.lookup(1, "c", FILE, 7n);
    assert.deepEqual(t.aliases(a.id), [b.id, c.id]);
    t.forget(b.id, 1);
    assert.deepEqual(t.aliases(a.id), [c.id]);
    t.forget(c.id, 1);
    assert.deepEqual(t.aliases(a.id), []);
    const d = t.lookup(1, "d", FILE, 7n);
    assert.deepEqual(t.aliases(d.id), [a.id]);
    t.forget(d.id, 1);
    const e = t.lookup(1, "d", FILE, 8n); // the kernel forgot d; the name now holds another file
    assert.deepEqual(t.aliases(a.id), []);
    assert.deepEqual(t.aliases(e.id), []);
  });

  it("regression: a live node keeps the inode number it was first reported with (one number per kernel inode)", () => {
    const d = t.lookup(1, "d", DIR, 7n);
    assert.equal(t.pin(d.id, 9n), 7n, "getattr answers the pinned number");
    assert.equal(t.lookup(1, "d", DIR, 9n).ino, 7n, "a lookup of the live node too");
    assert.equal(t.pin(1, 5n), 5n, "the root gets its number from its first getattr");
    assert.equal(t.pin(1, 6n), 5n);
    t.forget(d.id, 2);
    assert.equal(t.lookup(1, "d", DIR, 9n).ino, 9n, "once forgotten, the kernel takes the new number");
  });
});
