/**
 * Lookups of "." and ".." (file handles, export.ts) through the dispatcher, over a real union of temp
 * directories: a node the kernel forgot is found again where it was, after copy-up, rename and link, and
 * by a walk in a new session (a remount); a deleted one is ESTALE.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { dispatch, type Outcome } from "../../../src/fuse/kernel/dispatch";
import { FIRST_EPHEMERAL_ID } from "../../../src/fuse/kernel/nodeids";
import { Op } from "../../../src/fuse/kernel/protocol";
import { Session } from "../../../src/fuse/kernel/session";
import { createUnion } from "../../../src/unionfs";
import { makeUnion, root, type Fixture } from "../unionfs/fixture";
import { Body, payload, request } from "./requests";

const ESTALE = 116;

describe("fuse file handles: lookups of . and ..", () => {
  let fx: Fixture;
  let s: Session;
  const send = (opcode: number, body: Body, nodeid = 1): Outcome =>
    dispatch(s, request(opcode, body, { nodeid, uid: 0, gid: 0 }), (e) => {
      throw e;
    });
  /** LOOKUP → [nodeid, generation, st_ino], or the errno. */
  const lookup = (parent: number, name: string): [number, number, bigint] | number => {
    const out = send(Op.LOOKUP, new Body().name(name), parent);
    if (out.errno !== 0) return out.errno;
    const b = payload(out.reply?.parts ?? []);
    return [Number(b.readBigUInt64LE(0)), Number(b.readBigUInt64LE(8)), b.readBigUInt64LE(40)];
  };
  const id = (parent: number, name: string): number => {
    const got = lookup(parent, name);
    assert.ok(typeof got !== "number", `lookup of ${name}: errno ${String(got)}`);
    return got[0];
  };
  const forget = (nodeid: number, n = 1): void => void send(Op.FORGET, new Body().u64(n), nodeid);

  beforeEach(() => {
    fx = makeUnion([{}, { a: "lower a", d: { e: { f: "deep" } }, g: "g" }]);
    s = new Session(fx.fs);
  });
  afterEach(() => fx.cleanup());

  it("finds a forgotten node where it was, with the same node id and generation", () => {
    const a = lookup(1, "a");
    assert.ok(typeof a !== "number");
    forget(a[0]);
    assert.equal(s.table.has(a[0]), false);
    assert.deepEqual(lookup(a[0], "."), a);
    assert.equal(s.table.path(a[0]), "/a");
  });

  it("keeps the node id across copy-up, rename and link of a lower file", () => {
    const a = id(1, "a");
    fx.fs.setattr("/a", { mode: 0o600 }); // copy-up
    fx.fs.rename("/a", "/b", 0);
    s.table.renamed(1, "a", 1, "b", false);
    fx.fs.link("/b", "/c");
    forget(a);
    assert.equal(id(a, "."), a);
    assert.equal(s.table.path(a), "/b");
    forget(a);
    fx.fs.unlink("/b"); // behind the table's back: where it was remembered is gone
    assert.equal(id(a, "."), a, "found by a walk under its other name");
    assert.equal(s.table.path(a), "/c");
  });

  it("finds objects in a new session (a remount) by walking, directories with their parents", () => {
    const d = id(1, "d");
    const e = id(d, "e");
    const f = id(e, "f");
    s = new Session(fx.fs);
    assert.equal(id(f, "."), f);
    assert.equal(s.table.path(f), "/d/e/f");
    assert.equal(s.table.has(e), false, "e is only a link in the tree");
    assert.equal(id(e, "."), e);
    assert.equal(id(e, ".."), d, "the kernel reconnects a directory through ..");
    assert.equal(id(d, ".."), 1);
    assert.equal(id(d, "e"), e, "a lookup by name gives the same node");
  });

  it("says ESTALE for a deleted object, an id never handed out, and a removed node's parent", () => {
    const g = id(1, "g");
    const d = id(1, "d");
    const e = id(d, "e");
    forget(g);
    fx.fs.unlink("/g");
    assert.equal(lookup(g, "."), ESTALE);
    assert.equal(lookup(FIRST_EPHEMERAL_ID + 99, "."), ESTALE);
    assert.equal(lookup(123456789, "."), ESTALE);
    fx.fs.rename("/d", "/d2", 0);
    s.table.removed(1, "d");
    assert.equal(lookup(e, ".."), 2, "ENOENT: the kernel makes it ESTALE");
  });

  it("regression: a number the writable branch reuses comes with another generation", () => {
    fx.fs.release(fx.fs.create("/n1", fs.constants.O_WRONLY, 0o644, root).fh);
    const n1 = lookup(1, "n1");
    assert.ok(typeof n1 !== "number");
    forget(n1[0]);
    fx.fs.unlink("/n1");
    const { fh, attr: reused } = fx.fs.create("/n2", fs.constants.O_WRONLY, 0o644, root);
    fx.fs.release(fh);
    if (reused.ino !== n1[2]) return; // the filesystem picked another number: nothing to compare
    const again = lookup(n1[0], ".");
    assert.ok(typeof again !== "number");
    assert.notEqual(again[1], n1[1], "the kernel compares generations and says ESTALE");
  });

  it("finds a handle of a read-only union's file after a remount", () => {
    const ro = createUnion({
      branches: [{ path: path.join(fx.dirs[1] as string), mode: "ro" }],
      whiteout: "aufs",
    });
    try {
      s = new Session(ro);
      const f = id(id(id(1, "d"), "e"), "f");
      s = new Session(ro);
      assert.equal(id(f, "."), f);
    } finally {
      ro.destroy();
    }
  });
});
