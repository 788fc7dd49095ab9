/** The library's MountParams as the union's config. */
import { strict as assert } from "node:assert";
import { configOf } from "../../src";

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
