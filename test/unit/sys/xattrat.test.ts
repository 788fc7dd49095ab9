/**
 * src/sys/xattrat.ts: extended attributes read relative to a directory fd (getxattrat/listxattrat, or
 * the l* calls on a /proc path where the kernel has no such calls). No mounts.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { lsetxattr } from "../../../src/sys/libc";
import { getxattrAt, listxattrAt } from "../../../src/sys/xattrat";

describe("xattrs relative to a directory fd (sys/xattrat)", () => {
  let dir: string;
  let fd: number;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-xattrat-"));
    fs.mkdirSync(path.join(dir, "d"));
    fs.writeFileSync(path.join(dir, "d/f"), "");
    lsetxattr(path.join(dir, "d/f"), "user.k", Buffer.from("value"), 0);
    lsetxattr(path.join(dir, "d/f"), "user.big", Buffer.alloc(4000, 0x61), 0);
    fs.symlinkSync("f", path.join(dir, "d/l"));
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  });
  afterEach(() => {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reads a value in one piece, and none (undefined) where the object has no such attribute", () => {
    assert.equal(getxattrAt(fd, "d/f", "user.k")?.toString(), "value");
    const first = getxattrAt(fd, "d/f", "user.big");
    assert.deepEqual(first, Buffer.alloc(4000, 0x61));
    assert.equal(getxattrAt(fd, "d/f", "user.k")?.toString(), "value", "a value is a copy, not the scratch");
    assert.deepEqual(first, Buffer.alloc(4000, 0x61));
    assert.equal(getxattrAt(fd, "d/f", "user.none"), undefined);
    assert.equal(getxattrAt(fd, "d", "user.k"), undefined);
  });

  it("lists names, and never follows a symlink", () => {
    assert.deepEqual(listxattrAt(fd, "d/f").sort(), ["user.big", "user.k"]);
    assert.equal(getxattrAt(fd, "d/l", "user.k"), undefined);
    assert.deepEqual(listxattrAt(fd, "d/l"), []);
  });

  it("fails as the syscall does: ENOENT for a missing object, ERANGE for a name too long", () => {
    assert.throws(() => getxattrAt(fd, "d/missing", "user.k"), { code: "ENOENT" });
    assert.throws(() => listxattrAt(fd, "d/missing"), { code: "ENOENT" });
    assert.throws(() => getxattrAt(fd, "d/f", `user.${"n".repeat(300)}`), { code: "ERANGE" });
  });
});
