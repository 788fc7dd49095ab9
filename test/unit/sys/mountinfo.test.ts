/**
 * src/sys/mountinfo.ts: one parser of the mount table for everyone. No mounts.
 */
import { strict as assert } from "node:assert";
import { mountsAt, mountTable, parseMountInfo } from "../../../src/sys/mountinfo";

describe("mount table", () => {
  it("parses mountinfo, undoing octal escapes into byte strings (never decoding UTF-8)", () => {
    const raw = Buffer.from(
      "22 27 0:21 / /proc rw,relatime - proc proc rw\n" +
        "42 27 0:39 /sub /tmp/m\\040nt\\134x\\303\\251 rw,relatime shared:1 master:2 - fuse.unionfs-ts a\\040b rw,user_id=0\n" +
        "garbage\n",
      "latin1",
    );
    const rows = parseMountInfo(raw);
    assert.equal(rows.length, 2);
    assert.deepEqual(rows[1], {
      dev: "0:39",
      root: "/sub",
      mountPoint: "/tmp/m nt\\x\xc3\xa9",
      fsType: "fuse.unionfs-ts",
      source: "a b",
    });
  });

  it("reads this process's table; mountsAt takes a text path", () => {
    assert.ok(mountTable().some((m) => m.mountPoint === "/"));
    assert.ok(mountsAt("/").length > 0);
    assert.deepEqual(mountsAt("/nonexistent-mountpoint-of-no-one"), []);
  });
});
