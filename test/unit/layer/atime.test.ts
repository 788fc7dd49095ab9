/**
 * src/layer/atime.ts: the statvfs and mount_setattr translations of an atime policy, and the reads
 * that never change an access time (listNoatime, openNoatime). No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { listNoatime, mountAttrsOf, openNoatime, policyOfMountFlags } from "../../../src/layer/atime";

const TWO_HOURS_AGO = new Date(Date.now() - 2 * 3600 * 1000);

/** Sets atime = mtime = two hours ago, so that any counted read (relatime) changes atime. */
function age(p: string): bigint {
  fs.utimesSync(p, TWO_HOURS_AGO, TWO_HOURS_AGO);
  return fs.statSync(p, { bigint: true }).atimeNs;
}

describe("layer access times", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-atime-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads a mount's mode from statvfs flags (ST_NOATIME, ST_NODIRATIME, ST_RELATIME)", () => {
    assert.deepEqual(policyOfMountFlags(4096), { files: "relatime", dirs: "relatime" });
    assert.deepEqual(policyOfMountFlags(0), { files: "strictatime", dirs: "strictatime" });
    assert.deepEqual(policyOfMountFlags(1024 | 4096), { files: "noatime", dirs: "noatime" });
    assert.deepEqual(policyOfMountFlags(2048 | 4096), { files: "relatime", dirs: "noatime" });
  });

  it("gives a clone the union's mode: one MOUNT_ATTR_ atime value, nodiratime only when it matters", () => {
    const all = 0x70 | 0x80;
    assert.deepEqual(mountAttrsOf({ files: "relatime", dirs: "relatime" }), { set: 0, clear: all });
    assert.deepEqual(mountAttrsOf({ files: "strictatime", dirs: "noatime" }), {
      set: 0x20 | 0x80,
      clear: all,
    });
    assert.deepEqual(mountAttrsOf({ files: "noatime", dirs: "noatime" }), { set: 0x10, clear: all });
  });

  it("regression: listing a directory and reading a file leave their access times alone", function () {
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(dir, `f${i}`), "x");
    fs.mkdirSync(path.join(dir, "sub"));
    fs.symlinkSync("f0", path.join(dir, "ln"));
    const dirAtime = age(dir);
    const fileAtime = age(path.join(dir, "f1"));
    const listed = listNoatime(dir);
    const fd = openNoatime(path.join(dir, "f1"), fs.constants.O_RDONLY);
    assert.equal(fs.readFileSync(fd, "utf8"), "x");
    fs.closeSync(fd);
    assert.equal(fs.statSync(dir, { bigint: true }).atimeNs, dirAtime, "directory atime");
    assert.equal(fs.statSync(path.join(dir, "f1"), { bigint: true }).atimeNs, fileAtime, "file atime");
    const byName = new Map(listed.map((e) => [e.name, e.type]));
    assert.deepEqual([...byName.keys()].sort(), fs.readdirSync(dir).sort());
    assert.equal(byName.get("sub"), 0o040000);
    assert.equal(byName.get("f0"), 0o100000);
    assert.equal(byName.get("ln"), 0o120000);
    // The control: an ordinary read does count (unless this filesystem is mounted noatime).
    fs.readFileSync(path.join(dir, "f1"));
    if (fs.statSync(path.join(dir, "f1"), { bigint: true }).atimeNs === fileAtime) this.skip();
  });
});
