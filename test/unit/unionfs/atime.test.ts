/**
 * src/unionfs/atime.ts and the core's share of access times: which mode mount flags give, what the next
 * read does under it, what the core tells a transport (`accessTouch`), and that the core's own reads
 * and every read of a read-only branch leave access times alone. No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { atimePolicyOf, touchOf } from "../../../src/unionfs/atime";
import { createUnion } from "../../../src/unionfs";
import type { AtimePolicy } from "../../../src/unionfs/atime";
import { makeUnion, readAll, type Fixture } from "./fixture";

const S = 1_000_000_000n;
const NOW = 1_800_000_000n * S;
const TWO_HOURS_AGO = new Date(Date.now() - 2 * 3600 * 1000);

describe("access times: the policy", () => {
  it("mount flags: relatime by default, strictatime wins, noatime, nodiratime, and ro changes nothing", () => {
    const rel = { files: "relatime", dirs: "relatime" };
    const none = { files: "noatime", dirs: "noatime" };
    assert.deepEqual(atimePolicyOf([]), rel);
    assert.deepEqual(atimePolicyOf(["nosuid", "norelatime"]), rel);
    assert.deepEqual(atimePolicyOf(["noatime"]), none);
    assert.deepEqual(atimePolicyOf(["noatime", "atime"]), rel);
    assert.deepEqual(atimePolicyOf(["noatime", "strictatime"]), {
      files: "strictatime",
      dirs: "strictatime",
    });
    assert.deepEqual(atimePolicyOf(["strictatime", "noatime"]), {
      files: "strictatime",
      dirs: "strictatime",
    });
    assert.deepEqual(atimePolicyOf(["strictatime", "nodiratime"]), { files: "strictatime", dirs: "noatime" });
    assert.deepEqual(atimePolicyOf(["nodiratime", "diratime"]), rel);
    assert.deepEqual(atimePolicyOf(["strictatime", "ro"]), none);
    assert.deepEqual(atimePolicyOf(["ro", "rw"]), rel);
  });

  it("relatime: the next read counts when atime is not after mtime or ctime, or a day old", () => {
    const t = (a: bigint, m: bigint, c: bigint) => ({ atimeNs: a, mtimeNs: m, ctimeNs: c });
    assert.equal(touchOf("relatime", t(NOW - 10n * S, NOW - 20n * S, NOW - 20n * S), NOW), "later");
    assert.equal(touchOf("relatime", t(NOW - 10n * S, NOW - 10n * S, NOW - 20n * S), NOW), "next");
    assert.equal(touchOf("relatime", t(NOW - 10n * S, NOW - 20n * S, NOW - 5n * S), NOW), "next");
    assert.equal(
      touchOf("relatime", t(NOW - 86_400n * S, NOW - 90_000n * S, NOW - 90_000n * S), NOW),
      "next",
    );
    assert.equal(
      touchOf("relatime", t(NOW - 86_399n * S, NOW - 90_000n * S, NOW - 90_000n * S), NOW),
      "later",
    );
    assert.equal(touchOf("strictatime", t(NOW, 0n, 0n), NOW), "every");
    assert.equal(touchOf("noatime", t(0n, NOW, NOW), NOW), "none");
  });
});

describe("access times: the core", () => {
  let f: Fixture;
  afterEach(() => f?.cleanup());

  /** A union over fresh branches with the given policy (the fixture's union is closed first). */
  function withPolicy(atime: AtimePolicy): void {
    f.fs.destroy();
    f.fs = createUnion({
      branches: f.dirs.map((p, i) => ({ path: p, mode: i === 0 ? "rw" : "ro" })),
      whiteout: "aufs",
      atime,
    });
  }

  function touchOfOpen(p: string, flags: number): string {
    const fh = f.fs.open(p, flags);
    try {
      return f.fs.accessTouch?.(fh) ?? "?";
    } finally {
      f.fs.release(fh);
    }
  }

  it("tells the transport what the next read of a handle does", () => {
    f = makeUnion([{ up: "u" }, { low: "l" }]);
    const up = path.join(f.dirs[0] as string, "up");
    fs.utimesSync(up, TWO_HOURS_AGO, TWO_HOURS_AGO);
    const { O_RDONLY, O_WRONLY, O_RDWR, O_NOATIME } = fs.constants;
    assert.equal(touchOfOpen("/up", O_RDONLY), "next");
    assert.equal(touchOfOpen("/up", O_RDWR), "next");
    assert.equal(touchOfOpen("/up", O_WRONLY), "none", "a handle that cannot read");
    assert.equal(touchOfOpen("/up", O_RDONLY | O_NOATIME), "none", "the caller asked for O_NOATIME");
    assert.equal(touchOfOpen("/low", O_RDONLY), "none", "a lower file");
    fs.utimesSync(up, new Date(Date.now() + 3600 * 1000), TWO_HOURS_AGO); // read after its last change
    assert.equal(touchOfOpen("/up", O_RDONLY), "later");
    withPolicy({ files: "strictatime", dirs: "noatime" });
    assert.equal(touchOfOpen("/up", O_RDONLY), "every");
    assert.equal(f.fs.listingsTouchEveryTime?.(), false);
    withPolicy({ files: "strictatime", dirs: "strictatime" });
    assert.equal(f.fs.listingsTouchEveryTime?.(), true);
    withPolicy({ files: "noatime", dirs: "noatime" });
    assert.equal(touchOfOpen("/up", O_RDONLY), "none");
  });

  it("regression: reads, listings and copy-ups of lower objects leave the lower branch's atimes alone", () => {
    f = makeUnion([{}, { d: { a: "1", b: "2" }, top: "t" }]);
    const lower = f.dirs[1] as string;
    const objects = ["d", "d/a", "d/b", "top"].map((n) => path.join(lower, n));
    for (const p of objects) fs.utimesSync(p, TWO_HOURS_AGO, TWO_HOURS_AGO);
    const before = objects.map((p) => fs.statSync(p, { bigint: true }).atimeNs);
    assert.equal(readAll(f, "/d/a"), "1");
    const dh = f.fs.opendir("/d");
    assert.equal(f.fs.readdir(dh).length, 2);
    f.fs.releasedir(dh);
    f.fs.setattr("/d/b", { mode: 0o600 }); // copies d and d/b up, data included
    f.fs.rename("/top", "/moved", 0);
    assert.deepEqual(
      objects.map((p) => fs.statSync(p, { bigint: true }).atimeNs),
      before,
    );
    const copied = fs.statSync(path.join(f.dirs[0] as string, "d/b"), { bigint: true });
    assert.equal(copied.atimeNs, before[2], "a copy keeps the lower file's atime");
  });

  it("regression: the daemon's own listings (internal) leave an upper directory's atime alone", () => {
    f = makeUnion([{ u: { x: "1" } }, {}]);
    const dir = path.join(f.dirs[0] as string, "u");
    fs.utimesSync(dir, TWO_HOURS_AGO, TWO_HOURS_AGO);
    const before = fs.statSync(dir, { bigint: true }).atimeNs;
    const dh = f.fs.opendir("/u", { internal: true });
    assert.equal(f.fs.readdir(dh).length, 1);
    f.fs.releasedir(dh);
    assert.equal(fs.statSync(dir, { bigint: true }).atimeNs, before, "an internal listing is no access");
    const caller = f.fs.opendir("/u");
    f.fs.readdir(caller);
    f.fs.releasedir(caller);
    assert.notEqual(fs.statSync(dir, { bigint: true }).atimeNs, before, "a caller's listing is (relatime)");
  });
});
