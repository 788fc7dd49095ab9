/**
 * Read-only layers' listings shared by the unions of one thread (shared-listings.ts): a second union over
 * the same lower layer takes the listing the first made, unless the directory changed since; a layer no
 * union holds any more has its listings dropped.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createUnion } from "../../../src/unionfs";
import { sharedListings } from "../../../src/unionfs/shared-listings";
import type { UnionOps } from "../../../src/unionfs/types";
import { writeTree } from "./fixture";

describe("unionfs/shared-listings", () => {
  let root: string;
  const open: UnionOps[] = [];
  /** A union of a fresh writable layer over the shared lower layer. */
  const union = (): UnionOps => {
    const upper = fs.mkdtempSync(path.join(root, "upper-"));
    const lower = path.join(root, "lower");
    const u = createUnion({
      branches: [
        { path: upper, mode: "rw" },
        { path: lower, mode: "ro" },
      ],
      whiteout: "aufs",
    });
    open.push(u);
    return u;
  };
  const close = (u: UnionOps): void => {
    u.destroy();
    open.splice(open.indexOf(u), 1);
  };

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-shared-"));
    writeTree(path.join(root, "lower"), { d: { a: "a" } });
  });
  afterEach(() => {
    for (const u of open.splice(0)) u.destroy();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("lets a second union over the same lower layer take the first one's listing", () => {
    const first = union();
    const second = union(); // made first: a listing is shared only while another union has the layer
    assert.equal(first.getattr("/d/a").size, 1n); // lists lower/d
    const taken = sharedListings.counts.taken;
    assert.equal(second.getattr("/d/a").size, 1n);
    assert.throws(() => second.getattr("/d/none"), { code: "ENOENT" });
    assert.ok(sharedListings.counts.taken > taken, "the second union listed nothing itself");
  });

  it("lists a directory afresh for a union made after the directory changed (its ctime moved)", () => {
    const first = union();
    union(); // another union has the layer: first's listing is shared
    assert.throws(() => first.getattr("/d/new"), { code: "ENOENT" });
    assert.ok(sharedListings.counts.listings > 0);
    fs.writeFileSync(path.join(root, "lower", "d", "new"), "n");
    const second = union();
    assert.equal(second.getattr("/d/new").size, 1n, "a new mount sees what its lower layer has now");
  });

  it("shares nothing while a union is alone with its layer (a mount's own daemon)", () => {
    const before = sharedListings.counts.listings;
    union().getattr("/d/a");
    assert.equal(sharedListings.counts.listings, before);
  });

  it("drops a layer's listings when the last union holding it closes", () => {
    const before = sharedListings.counts;
    const first = union();
    const second = union();
    first.getattr("/d/a");
    second.getattr("/d/a");
    assert.equal(sharedListings.counts.layers, before.layers + 1, "one layer, held twice");
    close(first);
    assert.ok(sharedListings.counts.listings > before.listings, "still held by the second");
    close(second);
    assert.equal(sharedListings.counts.layers, before.layers);
    assert.equal(sharedListings.counts.listings, before.listings);
  });
});
