import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";

describe("library API (examples/library, run as a child process)", () => {
  it("mounts, writes through the mount, unmounts; the write lands in the upper layer only", function () {
    this.timeout(30000);
    const script = path.join(__dirname, "../../examples/library/mount-example.js");
    const r = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 25000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /merged view: hello\.txt/);
    assert.match(r.stdout, /lower layer: "hello from the image\\n"/);
    assert.match(r.stdout, /upper layer: "hello from the image\\nand from the container\\n"/);
  });
});
