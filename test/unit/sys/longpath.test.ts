/** sys/longpath: short paths pass through untouched; long ones are reached through a parent fd. */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { inParent, LONG_PATH, withPath } from "../../../src/sys/longpath";
import { code } from "../../helpers/errno";
import { openFds } from "../../helpers/fds";

const LEVELS = 17;
const COMP = "c".repeat(255);
/** 17 levels of 255-byte names: 4352 bytes, longer than PATH_MAX by itself. */
const DEEP = `/${COMP}`.repeat(LEVELS);

describe("sys/longpath: reaching paths longer than PATH_MAX", () => {
  let dir: string;
  let rootFd: number;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-longpath-"));
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      for (let i = 0; i < LEVELS; i++) {
        fs.mkdirSync(COMP);
        process.chdir(COMP);
      }
      fs.writeFileSync("file", "deep");
    } finally {
      process.chdir(cwd);
    }
    rootFd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  });
  after(() => {
    fs.closeSync(rootFd);
    execFileSync("rm", ["-rf", "--", dir]);
  });

  it("hands a short path over unchanged, without opening anything", () => {
    const fds = openFds();
    assert.deepEqual(
      withPath(rootFd, dir, "/a/b", (p) => [p, openFds()]),
      [`${dir}/a/b`, fds],
    );
  });

  it("reaches a deep object through a short path, and closes the fd afterwards", () => {
    const fds = openFds();
    const seen = withPath(rootFd, dir, `${DEEP}/file`, (p) => {
      assert.ok(p.length + 1 + 4 + 255 < 4096, `room for one more component: ${p}`);
      assert.match(p, /^\/proc\/self\/fd\/\d+\/file$/);
      return fs.readFileSync(p, "utf8");
    });
    assert.equal(seen, "deep");
    assert.ok(DEEP.length >= LONG_PATH);
    assert.equal(openFds(), fds);
    assert.equal(
      inParent(rootFd, `${DEEP}/file`, (dirFd, name) => [name, fs.fstatSync(dirFd).isDirectory()]).join(),
      "file,true",
    );
    assert.equal(openFds(), fds);
  });

  it("keeps errno codes and closes every fd on errors", () => {
    const fds = openFds();
    assert.equal(
      code(() => withPath(rootFd, dir, `${DEEP}/missing/x`, () => 0)),
      "ENOENT",
    );
    assert.equal(
      code(() => withPath(rootFd, dir, `${DEEP}/file/x`, () => 0)),
      "ENOTDIR",
    );
    assert.equal(
      code(() => withPath(rootFd, dir, `/nope${DEEP}`, () => 0)),
      "ENOENT",
    );
    assert.equal(
      code(() =>
        withPath(rootFd, dir, `${DEEP}/file`, () => {
          throw Object.assign(new Error("from the callback"), { code: "EXDEV" });
        }),
      ),
      "EXDEV",
    );
    assert.equal(openFds(), fds);
  });
});
