/** The library's MountParams as the union's config. */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { configOf, mount, UsageError, type TransportName } from "../../src";

describe("library: configOf", () => {
  it("regression: readOnly, passthrough and timeout reach the config (MountParams lacked them)", () => {
    const c = configOf({
      layers: ["/l1", "/l2"],
      upper: "/u",
      mountpoint: "/m",
      options: { readOnly: true, passthrough: "off", timeout: 0 },
    });
    assert.deepEqual(
      c.branches.map((b) => [b.path, b.mode]),
      [
        ["/u", "ro"],
        ["/l1", "ro"],
        ["/l2", "ro"],
      ],
    );
    assert.equal(c.passthrough, "off");
    assert.equal(c.cacheTimeout, 0);
    assert.equal(configOf({ layers: ["/l"], upper: "/u", mountpoint: "/m" }).branches[0]?.mode, "rw");
  });
});

describe("library: mount", () => {
  it("regression: MountParams lacked the transport: an unknown one is one line and nothing is mounted", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-ts-lib-"));
    try {
      for (const d of ["lower", "mp"]) fs.mkdirSync(path.join(dir, d));
      const params = { layers: [path.join(dir, "lower")], mountpoint: path.join(dir, "mp") };
      const transport = "bogus" as TransportName;
      await assert.rejects(
        mount({ ...params, options: { transport } }),
        (e: unknown) => e instanceof UsageError && /^unknown transport 'bogus'/.test(e.message),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("library: image exports", () => {
  it("exports the layer tools and the image store from the package entry (no deep imports)", async () => {
    const lib = await import("../../src");
    for (const f of [
      lib.diffLayer,
      lib.exportLayer,
      lib.importLayer,
      lib.importLayerStream,
      lib.resolveOverlay2,
      lib.chainIds,
    ]) {
      assert.equal(typeof f, "function");
    }
    const store = new lib.ImageStore({ dir: "/nonexistent/unionfs-ts-store" });
    assert.equal(store.dir, "/nonexistent/unionfs-ts-store");
    assert.deepEqual(await store.images(), [], "a store that does not exist yet is empty");
    assert.equal(lib.DEFAULT_STORE, "/var/lib/unionfs-ts");
  });
});
