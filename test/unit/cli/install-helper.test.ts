/** `unionfs-ts install-helper`: the explicit step that puts mount.fuse.unionfs-ts where mount(8) looks. */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { HELPER_NAME, installedHelper, installHelperCommand } from "../../../src/cli/install-helper";

describe("cli install-helper", () => {
  let dir = "";
  let helper = "";
  let other = "";
  const quiet = (fn: () => number): number => {
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = () => true;
    try {
      return fn();
    } finally {
      process.stdout.write = write;
    }
  };
  const install = (flags: Parameters<typeof installHelperCommand>[0], h = helper): number =>
    quiet(() => installHelperCommand({ dir, ...flags }, h));
  const target = (): string => path.join(dir, HELPER_NAME);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-ts-install-helper-"));
    for (const name of ["this", "other"]) {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(
        path.join(dir, name, "mount-helper.js"),
        `console.log("${name}", process.argv.slice(2).join(" "))\n`,
      );
    }
    helper = path.join(dir, "this", "mount-helper.js");
    other = path.join(dir, "other", "mount-helper.js");
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writes an executable script that runs this installation's helper with this node, by absolute paths", () => {
    assert.equal(install({}), 0);
    assert.equal(fs.statSync(target()).mode & 0o777, 0o755);
    assert.equal(installedHelper(target()), helper);
    const r = spawnSync(target(), ["SRC", "MNT", "-o", "ro"], {
      encoding: "utf8",
      env: { PATH: "/nonexistent" },
    });
    assert.equal(r.stdout, "this SRC MNT -o ro\n", r.stderr);
    assert.equal(install({}), 0, "a second install is fine");
    assert.deepEqual(fs.readdirSync(dir).sort(), [HELPER_NAME, "other", "this"], "no temp file left");
  });

  it("regression: keeps another installation's helper (a script or a symlink) unless --force", () => {
    install({}, other);
    assert.throws(() => install({}), new RegExp(`another installation \\(${other}\\).*--force`));
    assert.equal(installedHelper(target()), other);
    fs.rmSync(target());
    fs.symlinkSync(other, target());
    assert.throws(() => install({}), /another installation/);
    assert.throws(() => install({ uninstall: true }), /not removing it/);
    assert.equal(install({ force: true }), 0);
    assert.equal(installedHelper(target()), helper);
  });

  it("keeps a file that is no helper unless --force; a symlink to this installation's helper is ours", () => {
    fs.writeFileSync(target(), "#!/bin/sh\necho mine\n");
    assert.throws(() => install({}), /a file of its own: not replacing it/);
    assert.equal(fs.readFileSync(target(), "utf8"), "#!/bin/sh\necho mine\n");
    fs.rmSync(target());
    fs.symlinkSync(helper, target());
    assert.equal(install({}), 0);
    assert.equal(fs.lstatSync(target()).isFile(), true);
  });

  it("--uninstall removes only its own helper", () => {
    assert.equal(install({ uninstall: true }), 0, "nothing installed is fine");
    install({});
    assert.equal(install({ uninstall: true }), 0);
    assert.equal(fs.existsSync(target()), false);
  });

  it("refuses a missing directory and a helper that is not built", () => {
    assert.throws(() => install({ dir: path.join(dir, "nope") }), /is not a directory/);
    assert.throws(() => install({}, path.join(dir, "missing.js")), /is missing: build first/);
    assert.equal(fs.existsSync(target()), false);
  });
});
