/**
 * The real fuse-native binding (no mount): it loads from node_modules with its install script skipped,
 * and the class this transport builds on it switches the per-op timer off and routes every op to the
 * bridge. Skips, saying why, where the binding cannot load (that case is the ENOPKG line of select.test).
 */
import { strict as assert } from "node:assert";
import { fuseNativeAvailable, loadFuseNative } from "../../../src/fuse/native/binding";
import { NativeBridge } from "../../../src/fuse/native/bridge";
import { mountOptions } from "../../../src/fuse/native/encode";
import { unionFuseClass } from "../../../src/fuse/native/mount";
import type { UnionOps } from "../../../src/unionfs/types";

describe("fuse-native binding", function () {
  before(function () {
    const a = fuseNativeAvailable();
    if (!a.ok) {
      process.stdout.write(`      (skipped: ${a.why})\n`);
      this.skip();
    }
  });

  function build(): { fuse: ReturnType<typeof construct>; bridge: NativeBridge } {
    const bridge = new NativeBridge({} as UnionOps, { caller: { uid: 0, gid: 0, pid: 0 } });
    return { fuse: construct(bridge), bridge };
  }
  function construct(bridge: NativeBridge) {
    const { Fuse, addon } = loadFuseNative();
    const UnionFuse = unionFuseClass(Fuse, addon, bridge, mountOptions("A:B"));
    return new UnionFuse("/nonexistent-mountpoint", Object.fromEntries(bridge.names.map((n) => [n, true])), {
      timeout: false,
    });
  }

  it("loads, with the addon's fuse_native_unmount", () => {
    const n = loadFuseNative();
    assert.equal(typeof n.Fuse, "function");
    assert.equal(typeof n.addon.fuse_native_unmount, "function");
  });

  it("has fuse-native's 15 s per-op timer switched off (a slow copy-up is never ETIMEDOUT)", () => {
    assert.equal(build().fuse.timeout, 0);
  });

  it("routes every op the bridge knows to the bridge, and gives libfuse our options", () => {
    const { fuse, bridge } = build();
    const f = fuse as unknown as Record<string, unknown>;
    for (const name of bridge.names) assert.equal(typeof f[`_op_${name}`], "function", name);
    assert.equal(fuse._fuseOptions(), mountOptions("A:B"));
    const seen: string[] = [];
    bridge.dispatch = (name) => void seen.push(name);
    (f._op_getattr as (s: () => void, p: string) => void)(() => undefined, "/x");
    assert.deepEqual(seen, ["getattr"]);
  });

  it("exposes the addon's per-thread locals to the bridge while a handler runs", () => {
    const { fuse, bridge } = build();
    const handlers = fuse._makeHandlerArray();
    const locals = Buffer.alloc(8);
    let during: Buffer | undefined;
    bridge.dispatch = () => {
      during = bridge.locals;
    };
    // fuse-native's handler for utimens (op 12) calls _op_utimens synchronously; its reply would go to
    // the addon on the next tick, which never happens here because the bridge does not answer.
    const h = handlers[12];
    assert.ok(h);
    h(locals, 12, "/f", 0, 0, 0, 0);
    assert.equal(during, locals);
    assert.equal(bridge.locals, undefined);
  });
});
