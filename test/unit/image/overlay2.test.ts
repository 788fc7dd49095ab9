import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { overlay2MountArgs, readLowerFile, resolveOverlay2 } from "../../../src/image/overlay2";
import { buildMountOptions } from "../../../src/cli/options";
import { makeTempDir, removeTree } from "../../helpers/tmp";

/** A layer `<root>/<id>` with a diff/, a link file and its l/ symlink, optional lower file and work/. */
function addLayer(
  root: string,
  id: string,
  short: string,
  lowers: string[] | undefined,
  work: boolean,
): void {
  const dir = path.join(root, id);
  fs.mkdirSync(path.join(dir, "diff"), { recursive: true });
  fs.writeFileSync(path.join(dir, "link"), short);
  fs.mkdirSync(path.join(root, "l"), { recursive: true });
  fs.symlinkSync(`../${id}/diff`, path.join(root, "l", short));
  if (lowers) fs.writeFileSync(path.join(dir, "lower"), lowers.map((s) => `l/${s}`).join(":"));
  if (work) fs.mkdirSync(path.join(dir, "work"));
}

function usageError(pattern: RegExp): (e: Error) => boolean {
  return (e: Error) => e.name === "UsageError" && pattern.test(e.message) && !e.message.includes("\n");
}

describe("image: overlay2 layout", () => {
  let root: string;
  beforeEach(() => {
    root = makeTempDir("overlay2");
    addLayer(root, "base", "AAAA", undefined, false);
    addLayer(root, "mid", "BBBB", ["AAAA"], true);
    addLayer(root, "ctr-init", "CCCC", ["BBBB", "AAAA"], true);
    addLayer(root, "ctr", "DDDD", ["CCCC", "BBBB", "AAAA"], true);
  });
  afterEach(() => removeTree(root));

  const diff = (id: string) => path.join(root, id, "diff");

  it("a container layer: its diff rw on top, then -init and the image layers, work dir in the layer", () => {
    const m = resolveOverlay2(root, "ctr");
    assert.deepEqual(m.branches, [
      { path: diff("ctr"), mode: "rw" },
      { path: diff("ctr-init"), mode: "ro" },
      { path: diff("mid"), mode: "ro" },
      { path: diff("base"), mode: "ro" },
    ]);
    assert.equal(m.workdir, path.join(root, "ctr", "work"));
  });

  it("a base layer (no lower file, no work dir) alone, read-only", () => {
    assert.deepEqual(resolveOverlay2(root, "base"), {
      branches: [{ path: diff("base"), mode: "ro" }],
      workdir: undefined,
    });
  });

  it("readOnly keeps every branch ro and uses no work dir", () => {
    const m = resolveOverlay2(root, "ctr", true);
    assert.ok(m.branches.every((b) => b.mode === "ro"));
    assert.equal(m.workdir, undefined);
  });

  it("mount arguments: explicit modes, overlay whiteouts, the layer's work dir; they parse as a mount", () => {
    const args = overlay2MountArgs(resolveOverlay2(root, "mid"));
    assert.equal(args.branchList, `${diff("mid")}=rw:${diff("base")}=ro`);
    assert.deepEqual(args.options, ["whiteout=overlay", `workdir=${path.join(root, "mid", "work")}`]);
    const m = buildMountOptions([args.branchList, "/mnt"], args.options, "/");
    assert.equal(m.config.whiteout, "overlay");
    assert.equal(m.config.workdir, path.join(root, "mid", "work"));
    assert.deepEqual(m.config.branches, [
      { path: diff("mid"), mode: "rw" },
      { path: diff("base"), mode: "ro" },
    ]);
  });

  it("reads the lower file with or without a trailing newline", () => {
    fs.writeFileSync(path.join(root, "mid", "lower"), "l/AAAA\n");
    assert.deepEqual(readLowerFile(path.join(root, "mid")), ["l/AAAA"]);
    assert.deepEqual(readLowerFile(path.join(root, "base")), []);
  });

  describe("bad layouts: one clear line", () => {
    it("missing root, bad or unknown id, missing diff", () => {
      assert.throws(
        () => resolveOverlay2(path.join(root, "nope"), "ctr"),
        usageError(/overlay2 root .* does not exist/),
      );
      assert.throws(() => resolveOverlay2(root, "../ctr"), usageError(/is not an overlay2 layer id/));
      assert.throws(() => resolveOverlay2(root, "l"), usageError(/is not an overlay2 layer id/));
      assert.throws(() => resolveOverlay2(root, "nosuch"), usageError(/no layer 'nosuch'/));
      fs.rmdirSync(diff("base"));
      assert.throws(() => resolveOverlay2(root, "base"), usageError(/has no diff\/ directory/));
    });

    it("a lower entry that is dangling, escapes ROOT, is absolute, or repeats", () => {
      const lower = path.join(root, "ctr", "lower");
      fs.writeFileSync(lower, "l/CCCC:l/ZZZZ");
      assert.throws(() => resolveOverlay2(root, "ctr"), usageError(/'l\/ZZZZ' named in .* does not exist/));
      fs.writeFileSync(lower, "l/CCCC:../elsewhere");
      assert.throws(() => resolveOverlay2(root, "ctr"), usageError(/bad entry '\.\.\/elsewhere'/));
      fs.writeFileSync(lower, `${diff("base")}`);
      assert.throws(() => resolveOverlay2(root, "ctr"), usageError(/bad entry/));
      const outside = makeTempDir("outside");
      try {
        fs.symlinkSync(outside, path.join(root, "l", "EVIL"));
        fs.writeFileSync(lower, "l/EVIL");
        assert.throws(() => resolveOverlay2(root, "ctr"), usageError(/points outside/));
      } finally {
        removeTree(outside);
      }
      fs.writeFileSync(lower, "l/AAAA:l/AAAA");
      assert.throws(() => resolveOverlay2(root, "ctr"), usageError(/twice/));
    });
  });
});
