/**
 * The differential test (kernel overlayfs as the oracle) run through the fuse-native transport: a child
 * mocha runs dist/test/integration/differential.test.js with UNIONFS_TS_TRANSPORT=fuse-native, which
 * test/helpers/unionfs.ts turns into --transport=fuse-native on every CLI mount.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { runChild } from "../../helpers/syscalls";
import { TRANSPORT_VAR } from "../../helpers/unionfs";
import { requireNative } from "./native";

describe("fuse-native transport: the differential scenarios", function () {
  this.timeout(300_000);
  before(function () {
    requireNative(this);
    if (process.env[TRANSPORT_VAR]) {
      process.stdout.write(
        `      (skipped: ${TRANSPORT_VAR} is set, so differential.test runs on it already)\n`,
      );
      this.skip();
    }
  });

  it("every scenario shows the same as kernel overlayfs", async () => {
    const root = path.resolve(__dirname, "..", "..", "..", "..");
    const mocha = path.join(root, "node_modules", "mocha", "bin", "mocha.js");
    const spec = path.join(root, "dist", "test", "integration", "differential.test.js");
    const saved = process.env[TRANSPORT_VAR];
    process.env[TRANSPORT_VAR] = "fuse-native";
    let r;
    try {
      r = await runChild(process.execPath, [mocha, "--timeout", "60000", "--reporter", "dot", spec], {
        cwd: root,
        timeoutMs: 280_000,
      });
    } finally {
      if (saved === undefined) delete process.env[TRANSPORT_VAR];
      else process.env[TRANSPORT_VAR] = saved;
    }
    const summary = r.stdout.split("\n").filter((l) => /passing|failing|pending/.test(l));
    process.stdout.write(
      `      differential through fuse-native: ${summary.map((l) => l.trim()).join(", ")}\n`,
    );
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.ok(!summary.some((l) => /failing/.test(l)));
  });
});
