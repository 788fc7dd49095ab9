/**
 * Regression (issue #14, the 4-layer `-f` mount slower than before the restructure): the mount command's
 * checks of a directory stack loaded the layer classes (and with them the native bindings' modules) and
 * the whiteout registry in the mounting thread, for two names (WORKDIR_NAME, isTarArchive). The checks
 * run in a child process, whose module cache then tells what loaded (the option parser still loads the
 * registry, which names the formats).
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const MOUNT_JS = path.join(__dirname, "..", "..", "..", "src", "cli", "mount.js");

function loadedBy(script: string): string[] {
  const out = execFileSync(process.execPath, ["-e", script], { encoding: "utf8" });
  return JSON.parse(out) as string[];
}

describe("mount command: modules loaded", () => {
  let dir = "";
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "mount-loads-"));
    for (const d of ["A", "B", "mnt"]) fs.mkdirSync(path.join(dir, d));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("checking a directory stack loads no layer class, no tar code, no koffi", () => {
    const script =
      `const m = require(${JSON.stringify(MOUNT_JS)});` +
      `m.validateMount(["A:B", "mnt"], [], ${JSON.stringify(dir)});` +
      `process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
    const loaded = loadedBy(script);
    assert.ok(
      loaded.some((f) => f.endsWith("/unionfs/branches.js")),
      "the checks ran",
    );
    const heavy = loaded.filter((f) => /\/layer\/(dir|file|tar\/index|tar\/archive)\.js$|\/koffi\//.test(f));
    assert.deepEqual(heavy, []);
  });
});
