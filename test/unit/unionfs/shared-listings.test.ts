/**
 * Read-only layers' listings shared by the unions of one thread (shared-listings.ts): a second union over
 * the same lower layer uses the listing the first took, and a layer no union holds any more is listed
 * afresh by the next.
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

  it("lets a second union over the same lower layer use the first one's listing", () => {
    const first = union();
    assert.equal(first.getattr("/d/a").size, 1n); // lists lower/d
    // Changing a mounted lower layer is outside the contract; here it shows whose listing is used.
    fs.writeFileSync(path.join(root, "lower", "d", "new"), "n");
    const second = union();
    assert.throws(() => second.getattr("/d/new"), { code: "ENOENT" }, "the shared listing has no 'new'");
    assert.equal(second.getattr("/d/a").size, 1n);
  });

  it("drops a layer's listings when the last union holding it closes, so the next one lists it afresh", () => {
    const before = sharedListings.counts.layers;
    const first = union();
    const second = union();
    first.getattr("/d/a");
    assert.equal(sharedListings.counts.layers, before + 1, "one layer, held twice");
    close(first);
    assert.throws(() => second.getattr("/d/new"), { code: "ENOENT" });
    close(second);
    assert.equal(sharedListings.counts.layers, before);
    fs.writeFileSync(path.join(root, "lower", "d", "new"), "n");
    assert.equal(union().getattr("/d/new").size, 1n);
  });
});
