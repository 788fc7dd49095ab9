/** mount.fuse.unionfs-ts: mount(8)'s calling convention, fstab-only options, remount. */
import { strict as assert } from "node:assert";
import { helperArgs, parseHelperArgs, remountArgs } from "../../../src/cli/mount-helper";

describe("mount.fuse.unionfs-ts", () => {
  it("turns mount(8)'s call into unionfs-ts mount, options joined", () => {
    assert.deepEqual(helperArgs(["/a:/b", "/c", "-o", "rw,nosuid", "-t", "fuse.unionfs-ts"]), [
      "mount",
      "/a:/b",
      "/c",
      "-o",
      "rw,nosuid",
    ]);
    assert.deepEqual(helperArgs(["x", "/c", "-olowerdir=/l"]), ["mount", "x", "/c", "-o", "lowerdir=/l"]);
  });

  it("regression: drops fstab and systemd options (nofail, _netdev, noauto, user, x-systemd.*)", () => {
    const args = [
      "/a:/b",
      "/c",
      "-o",
      "defaults,nofail,_netdev,noauto,user,x-systemd.automount,comment=x,nodev",
    ];
    assert.deepEqual(helperArgs(args), ["mount", "/a:/b", "/c", "-o", "nodev"]);
    assert.deepEqual(helperArgs(["/a:/b", "/c", "-o", "nofail"]), ["mount", "/a:/b", "/c"]);
  });

  it("regression: remount changes generic flags with MS_REMOUNT only (it was an unknown option)", () => {
    const call = parseHelperArgs([
      "/a:/b",
      "/c",
      "-o",
      "rw,nosuid,user_id=0,group_id=0,allow_other,remount,ro",
    ]);
    assert.deepEqual(remountArgs(call), ["-i", "-o", "remount,rw,nosuid,ro", "--", "/c"]);
    const bad = remountArgs(parseHelperArgs(["/a:/b", "/c", "-o", "remount,lowerdir=/x"]));
    assert.equal(bad, "remount: only generic flags can change, not 'lowerdir=/x'");
  });
});
