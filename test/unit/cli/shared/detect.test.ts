import { strict as assert } from "node:assert";
import { plainMountArgs, sharedMountArgs } from "../../../../src/cli/shared/detect";

const NO_ENV = {};
const SHARED_ENV = { UNIONFS_TS_SHARED: "1" };

describe("cli/shared/detect", () => {
  it("reads a mount with -o shared in every spelling of -o", () => {
    const want = { positionals: ["a:b", "m"], options: ["ro,shared"], verbose: false };
    assert.deepEqual(sharedMountArgs(["mount", "-o", "ro,shared", "a:b", "m"], NO_ENV), want);
    assert.deepEqual(sharedMountArgs(["-oro,shared", "a:b", "m"], NO_ENV), want);
    assert.deepEqual(sharedMountArgs(["a:b", "--options=ro,shared", "m"], NO_ENV), want);
    assert.deepEqual(sharedMountArgs(["--options", "ro,shared", "a:b", "m"], NO_ENV), want);
  });

  it("reads the lowerdir= form, -v, --transport and --store", () => {
    const argv = ["-v", "--store=/s", "--transport", "kernel", "-o", "lowerdir=/l,shared", "/m"];
    assert.deepEqual(sharedMountArgs(argv, NO_ENV), {
      positionals: ["/m"],
      options: ["lowerdir=/l,shared"],
      verbose: true,
      transport: "kernel",
    });
  });

  it("takes UNIONFS_TS_SHARED=1 for -o shared", () => {
    assert.equal(sharedMountArgs(["a:b", "m"], NO_ENV), undefined);
    assert.deepEqual(sharedMountArgs(["a:b", "m"], SHARED_ENV)?.positionals, ["a:b", "m"]);
  });

  it("regression: the daemon of a mount the server sent back serves it, instead of asking again", () => {
    const env = { ...SHARED_ENV, UNIONFS_TS_DAEMON: "1" };
    assert.equal(sharedMountArgs(["-o", "shared", "a:b", "m"], env), undefined);
  });

  it("leaves to the full CLI what must run in the foreground or that it does not understand", () => {
    for (const argv of [
      ["-f", "a:b", "m"],
      ["--foreground", "a:b", "m"],
      ["-d", "a:b", "m"],
      ["-o", "debug", "a:b", "m"],
      ["--transport=fuse-native", "a:b", "m"],
      ["--help"],
      ["--version"],
      ["umount", "m"],
      ["run", "a:b", "--", "sh"],
      ["-x", "a:b", "m"],
      [],
      ["a", "b", "c"],
      ["-o", 'x="a,b', "a:b", "m"],
      ["-o"],
    ]) {
      assert.equal(sharedMountArgs(argv, SHARED_ENV), undefined, argv.join(" "));
    }
  });

  it("regression: a store command after global options (--store DIR images) is not a mount", () => {
    for (const argv of [
      ["--store", "/s", "images"],
      ["--store=/s", "rm", "c1"],
      ["--store", "/s", "save", "-o", "x.tar", "img"],
    ]) {
      assert.equal(plainMountArgs(argv, {}), undefined, argv.join(" "));
    }
    assert.deepEqual(plainMountArgs(["--store", "/s", "mount", "a:b", "m"], {})?.positionals, ["a:b", "m"]);
  });

  it("keeps a debug log in the shared server when it goes to a file", () => {
    const argv = ["-o", "debug,log=/tmp/l", "a:b", "m"];
    assert.deepEqual(sharedMountArgs(argv, SHARED_ENV)?.options, ["debug,log=/tmp/l"]);
  });
});
