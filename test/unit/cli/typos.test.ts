/** Mistyped commands versus branch lists (mount is the default command). */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { unknownCommand } from "../../../src/cli/typos";

const COMMANDS = ["mount", "umount", "run", "diff", "export", "import", "mount-overlay2", "help"];

describe("cli typos", () => {
  it("regression: 'unmount C' and 'mnt A:B C' are unknown commands, with a suggestion", () => {
    assert.equal(
      unknownCommand(["unmount", "C"], COMMANDS),
      "unknown command 'unmount' (did you mean 'umount'?)",
    );
    assert.equal(
      unknownCommand(["mnt", "A:B", "C"], COMMANDS),
      "unknown command 'mnt' (did you mean 'mount'?)",
    );
    assert.equal(unknownCommand(["help", "foo"], COMMANDS), "unknown command 'foo'");
  });

  it("leaves branch lists, paths, options, real commands and existing directories alone", () => {
    for (const argv of [
      ["A:B", "C"],
      ["./unmount", "C"],
      ["-o", "ro"],
      ["umount", "C"],
      ["help", "mount"],
      [],
    ]) {
      assert.equal(unknownCommand(argv, COMMANDS), undefined, argv.join(" "));
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-ts-typo-"));
    const cwd = process.cwd();
    try {
      fs.mkdirSync(path.join(dir, "mnt"));
      process.chdir(dir);
      assert.equal(unknownCommand(["mnt", "C"], COMMANDS), undefined, "a directory named mnt is a branch");
    } finally {
      process.chdir(cwd);
      fs.rmSync(dir, { recursive: true });
    }
  });
});
