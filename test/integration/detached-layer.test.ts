/**
 * Regression: container engines (podman --uidmap) bind-mount id-mapped layers, pass those paths, and
 * detach the binds as soon as the mount program returns. The union must keep serving them.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { forceUnmount, run } from "../helpers/mounts";
import { file } from "../helpers/tmp";
import { useCleanup } from "../helpers/unionfs";

describe("a lower layer detached after mounting", function () {
  this.timeout(30000);
  const c = useCleanup();

  it("stays visible through the union (the daemon holds the layer, not its path)", async () => {
    const root = c.tempDir("detach");
    const lower = c.tree({ file: file("hi\n"), d: { inner: file("x") } }, "lower");
    const [bind, upper, work, mnt] = ["bind", "upper", "work", "mnt"].map((d) => {
      fs.mkdirSync(path.join(root, d));
      return path.join(root, d);
    }) as [string, string, string, string];
    assert.equal(run("mount", ["--bind", lower, bind]).status, 0);
    c.defer(`unmount ${bind}`, () => forceUnmount(bind));
    await c.union("detach", mnt, { options: [`lowerdir=${bind},upperdir=${upper},workdir=${work}`] });
    assert.equal(run("umount", ["-l", bind]).status, 0);
    assert.deepEqual(fs.readdirSync(mnt).sort(), ["d", "file"]);
    assert.equal(fs.readFileSync(path.join(mnt, "file"), "utf8"), "hi\n");
    fs.appendFileSync(path.join(mnt, "d/inner"), "y");
    assert.equal(fs.readFileSync(path.join(upper, "d/inner"), "utf8"), "xy");
  });
});
