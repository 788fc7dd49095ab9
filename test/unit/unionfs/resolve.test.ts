/**
 * Lookups in a deep stack once its read-only listings are merged (dircache.ts `anywhere`): a name in
 * none of them skips them all, and a name or whiteout in any one layer is still found there.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { makeUnion, type Fixture, type TreeSpec } from "./fixture";

describe("unionfs/resolve: a deep stack", () => {
  let f: Fixture;
  afterEach(() => f.cleanup());

  /** The writable layer, then 11 read-only ones, each with directory d holding `filler-N`. */
  function deep(extra: Record<number, TreeSpec>): TreeSpec[] {
    return Array.from({ length: 12 }, (_, i): TreeSpec =>
      i === 0 ? {} : { d: { [`filler-${i}`]: "x", ...extra[i] } },
    );
  }

  it("finds names and honours whiteouts below layers whose listings lack them, before and after merging", () => {
    f = makeUnion(deep({ 6: { ".wh.gone": "" }, 9: { gone: "deep gone" }, 11: { bottom: "at the bottom" } }));
    for (let round = 0; round < 2; round++) {
      assert.throws(() => f.fs.getattr("/d/nowhere"), { code: "ENOENT" }, `round ${round}`);
      assert.equal(f.fs.getattr("/d/bottom").size, 13n);
      assert.throws(() => f.fs.getattr("/d/gone"), { code: "ENOENT" }, "whited out in layer 6");
      assert.equal(f.fs.getattr("/d/filler-7").size, 1n);
    }
  });

  it("sees an overlay-format whiteout (a 0/0 character device of the same name) below merged listings", function () {
    if (process.getuid?.() !== 0) this.skip();
    f = makeUnion(deep({ 9: { gone: "deep gone" } }), undefined, "overlay");
    const made = spawnSync("mknod", [path.join(f.dirs[6] as string, "d", "gone"), "c", "0", "0"]);
    assert.equal(made.status, 0, String(made.stderr));
    for (let round = 0; round < 2; round++) {
      assert.throws(() => f.fs.getattr("/d/gone"), { code: "ENOENT" }, `round ${round}`);
      assert.equal(f.fs.getattr("/d/filler-9").size, 1n);
    }
  });
});
