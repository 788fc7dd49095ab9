/**
 * fusectl connection ids, fsname sanitising and mount(8) error reporting.
 */
import { strict as assert } from "node:assert";
import { connectionId, mountError } from "../../../src/fuse/control";
import { sanitizeFsname } from "../../../src/fuse/kernel/mount-command";

describe("fuse mount helpers", () => {
  it("names fusectl connections by the kernel's dev_t", () => {
    assert.equal(connectionId("0:39"), 39);
    assert.equal(connectionId("1:2"), (1 << 20) | 2);
  });

  it("keeps fsnames on one line and away from device specs", () => {
    assert.equal(sanitizeFsname("/a:/b,c d"), "/a:/b,c d");
    assert.equal(sanitizeFsname("x\ny\0"), "x?y?");
    assert.equal(sanitizeFsname(""), "unionfs-ts");
    assert.equal(sanitizeFsname("UUID=1234"), "unionfs-ts:UUID=1234");
  });

  it("reports mount(8) failures as one line with a fitting code", () => {
    const e = mountError(
      "mount: /x: mount point does not exist.\n       dmesg(1) may have more information.\n",
    );
    assert.equal(e.message, "mount: /x: mount point does not exist.; dmesg(1) may have more information.");
    assert.equal(e.code, "ENOENT");
    assert.equal(mountError("umount: /x: target is busy.").code, "EBUSY");
    assert.equal(mountError("weird").code, "EIO");
  });
});
