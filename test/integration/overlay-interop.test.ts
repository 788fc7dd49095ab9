/**
 * Overlay-format interop: a stack written through kernel overlayfs mounts unchanged on unionfs-ts, and
 * what unionfs-ts writes in overlay format (char 0/0 whiteouts, opaque xattrs) reads back the same on
 * kernel overlayfs. Kernel overlayfs runs with redirect_dir, index, metacopy and xino off (pinned).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { diffSnapshots, snapshotTree } from "../helpers/snapshot";
import { dir, file, symlink, writeTree } from "../helpers/tmp";
import { useCleanup } from "../helpers/unionfs";

describe("overlay-format interop with kernel overlayfs", function () {
  this.timeout(60000);
  const c = useCleanup();

  function layout(): { lower: string; upper: string; work: string; mnt: string; root: string } {
    const root = c.tempDir("interop");
    const lower = path.join(root, "lower");
    const spec = {
      a: file("alpha\n"),
      b: file("bravo\n"),
      d: dir({ x: file("x\n"), y: file("y\n") }),
      e: dir({ z: file("z\n"), keep: file("k\n") }),
      keep: dir({ k: file("k\n") }),
      l: symlink("a"),
    };
    fs.mkdirSync(lower);
    writeTree(lower, spec);
    const [upper, work, mnt] = ["upper", "work", "mnt"].map((d) => {
      const p = path.join(root, d);
      fs.mkdirSync(p);
      return p;
    }) as [string, string, string];
    return { lower, upper, work, mnt, root };
  }

  async function changeThrough(mnt: string): Promise<void> {
    fs.unlinkSync(path.join(mnt, "b"));
    fs.rmSync(path.join(mnt, "d"), { recursive: true });
    fs.mkdirSync(path.join(mnt, "d"));
    fs.writeFileSync(path.join(mnt, "d/n"), "new\n");
    fs.appendFileSync(path.join(mnt, "a"), "more\n");
    fs.renameSync(path.join(mnt, "keep/k"), path.join(mnt, "keep/k2"));
    fs.mkdirSync(path.join(mnt, "newdir"));
    fs.writeFileSync(path.join(mnt, "newdir/f"), "f\n");
    fs.unlinkSync(path.join(mnt, "e/z"));
    fs.symlinkSync("a", path.join(mnt, "link2"));
    fs.chmodSync(path.join(mnt, "a"), 0o600);
  }

  it("a stack written by kernel overlayfs shows the same view on unionfs-ts (rw and read-only)", async () => {
    const t = layout();
    const k = c.overlay({ lower: [t.lower], upper: t.upper, work: t.work, mnt: t.mnt });
    await changeThrough(t.mnt);
    const expected = await snapshotTree(t.mnt);
    k.unmount();

    const work2 = path.join(t.root, "work2");
    fs.mkdirSync(work2);
    const rw = await c.union("interop", t.mnt, {
      options: [`lowerdir=${t.lower},upperdir=${t.upper},workdir=${work2}`],
    });
    assert.deepEqual(diffSnapshots(expected, await snapshotTree(t.mnt)), []);
    await rw.unmount();

    const ro = await c.union("interop-ro", t.mnt, { options: [`lowerdir=${t.upper}:${t.lower}`] });
    assert.deepEqual(diffSnapshots(expected, await snapshotTree(t.mnt)), []);
    await ro.unmount();
  });

  it("what unionfs-ts writes in overlay format reads back the same on kernel overlayfs", async () => {
    const t = layout();
    const work2 = path.join(t.root, "work2");
    fs.mkdirSync(work2);
    const u = await c.union("interop", t.mnt, {
      options: [`lowerdir=${t.lower},upperdir=${t.upper},workdir=${work2}`],
    });
    await changeThrough(t.mnt);
    // Renaming a lower directory works on unionfs-ts (kernel overlayfs says EXDEV without redirects):
    // the result is an opaque directory that kernel overlayfs reads like any other.
    fs.renameSync(path.join(t.mnt, "e"), path.join(t.mnt, "e2"));
    const expected = await snapshotTree(t.mnt);
    await u.unmount();
    assert.ok(fs.lstatSync(path.join(t.upper, "b")).isCharacterDevice(), "b is a 0/0 whiteout in upper");

    c.overlay({ lower: [t.lower], upper: t.upper, work: t.work, mnt: t.mnt });
    assert.deepEqual(diffSnapshots(expected, await snapshotTree(t.mnt)), []);
  });
});
