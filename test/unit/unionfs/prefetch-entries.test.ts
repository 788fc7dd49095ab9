/**
 * Union.prefetchEntries (dirs.ts): which layers are asked to warm what. Only read-only layers, with the
 * names of their own listing that are directories; a directory the union cannot find asks nothing; nor
 * does anything while the disk is warm (the layers would drop it).
 */
import { strict as assert } from "node:assert";
import { DirLayer } from "../../../src/layer/dir";
import { closePrefetcher, prefetcher } from "../../../src/layer/prefetch";
import { makeUnion, type Fixture } from "./fixture";

describe("unionfs/prefetchEntries", () => {
  let f: Fixture;
  let asked: Array<[string, string, string[]]>;
  const real = Object.getOwnPropertyDescriptor(DirLayer.prototype, "prefetch");

  beforeEach(() => {
    asked = [];
    DirLayer.prototype.prefetch = function (this: DirLayer, rel: string, dirs: readonly string[]) {
      asked.push([this.origin, rel, [...dirs]]);
    };
    for (let i = 0; i < 8; i++) prefetcher().cold.waited(); // this thread's disk is cold (cold.ts)
  });

  afterEach(() => {
    if (real !== undefined) Object.defineProperty(DirLayer.prototype, "prefetch", real);
    closePrefetcher();
    f.cleanup();
  });

  it("asks each read-only layer of the directory for its own subdirectories, never the writable one", () => {
    f = makeUnion([
      { d: { up: {}, file: "x" } },
      { d: { low: {}, other: "y", deep: { x: "z" } } },
      { d: { bottom: {} }, e: {} },
    ]);
    f.fs.prefetchEntries?.("/d");
    const byLayer = asked.map(([origin, rel, dirs]) => [f.dirs.indexOf(origin), rel, dirs]);
    assert.deepEqual(byLayer, [
      [1, "/d", ["deep", "low"]],
      [2, "/d", ["bottom"]],
    ]);
  });

  it("asks nothing for a directory that is not there, or a file", () => {
    f = makeUnion([{}, { file: "x", d: {} }]);
    assert.ok(f.fs.prefetchEntries, "the union takes the hint");
    f.fs.prefetchEntries("/missing");
    f.fs.prefetchEntries("/file");
    assert.equal(asked.length, 0);
    f.fs.prefetchEntries("/");
    assert.deepEqual(
      asked.map(([, rel, dirs]) => [rel, dirs]),
      [["", ["d"]]],
    );
  });

  it("asks nothing while the disk is warm", () => {
    f = makeUnion([{}, { d: { low: {} } }]);
    closePrefetcher(); // a new pool: warm
    f.fs.prefetchEntries?.("/d");
    assert.equal(asked.length, 0);
  });
});
