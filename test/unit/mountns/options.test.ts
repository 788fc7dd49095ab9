import { strict as assert } from "node:assert";
import { containerEnv, DEFAULT_PATH, parseRunArgs } from "../../../src/mountns/options";
import { UsageError } from "../../../src/errors";

function usageError(args: string[], pattern: RegExp): void {
  assert.throws(
    () => parseRunArgs(args),
    (err: unknown) => err instanceof UsageError && pattern.test(err.message) && !err.message.includes("\n"),
    `expected a one-line UsageError matching ${pattern} for ${JSON.stringify(args)}`,
  );
}

describe("parseRunArgs", () => {
  it("splits LAYERS from COMMAND at the first --, keeping COMMAND's arguments untouched", () => {
    const o = parseRunArgs(["rw:img:base", "--", "sh", "-c", "echo -- --pid", "--", "-v"]);
    assert.equal(o.layers, "rw:img:base");
    assert.equal(o.mounted, undefined);
    assert.deepEqual(o.command, ["sh", "-c", "echo -- --pid", "--", "-v"]);
    assert.deepEqual(
      { workdir: o.workdir, env: o.env, pid: o.pid, sys: o.sys, keep: o.keep, verbose: o.verbose },
      { workdir: "/", env: [], pid: true, sys: false, keep: false, verbose: false },
    );
    assert.equal(o.hostname, undefined);
  });

  it("reads every option, before or after LAYERS, with a separate or an = value", () => {
    const o = parseRunArgs([
      "--pid",
      "--hostname",
      "box",
      "A:B",
      "--workdir=/opt/app",
      "--env",
      "K=V",
      "-e",
      "X=a=b",
      "--env=EMPTY=",
      "--sys",
      "--keep",
      "-v",
      "--",
      "ls",
    ]);
    assert.equal(o.layers, "A:B");
    assert.equal(o.hostname, "box");
    assert.equal(o.workdir, "/opt/app");
    assert.deepEqual(o.env, ["K=V", "X=a=b", "EMPTY="]);
    assert.ok(o.pid && o.sys && o.keep && o.verbose);
    assert.deepEqual(o.command, ["ls"]);
  });

  it("pid namespace: a new one by default, --pid=host shares the host's (the last --pid wins)", () => {
    const pid = (...opts: string[]): boolean => parseRunArgs([...opts, "A", "--", "sh"]).pid;
    assert.equal(pid(), true);
    assert.equal(pid("--pid=host"), false);
    assert.equal(pid("--pid=private"), true);
    assert.equal(pid("--pid=host", "--pid"), true);
    assert.equal(pid("--pid", "--pid=host"), false);
  });

  it("takes --mounted instead of LAYERS", () => {
    const o = parseRunArgs(["--mounted", "/mnt/c", "--", "true"]);
    assert.equal(o.mounted, "/mnt/c");
    assert.equal(o.layers, undefined);
  });

  it("takes --image (with --name, --keep and --store) instead of LAYERS", () => {
    const o = parseRunArgs(["--image", "busybox", "--name=c1", "--keep", "--store", "/s", "--", "true"]);
    assert.deepEqual([o.image, o.name, o.keep, o.store, o.layers], ["busybox", "c1", true, "/s", undefined]);
  });

  it("rejects a missing --, a missing COMMAND, missing or doubled LAYERS", () => {
    usageError(["A:B", "sh"], /missing '--'/);
    usageError(["A:B"], /missing '--'/);
    usageError([], /missing '--'/);
    usageError(["A:B", "--"], /no COMMAND/);
    usageError(["A:B", "--", ""], /no COMMAND/);
    usageError(["--", "sh"], /no LAYERS/);
    usageError(["--mounted", "/c", "A:B", "--", "sh"], /give one of LAYERS/);
    usageError(["--image", "busybox", "A:B", "--", "sh"], /give one of LAYERS/);
    usageError(["A:B", "--name", "c1", "--", "sh"], /--name goes with --image/);
    usageError(["A:B", "C:D", "--", "sh"], /unexpected argument 'C:D'/);
  });

  it("rejects unknown options, options without values and bad values", () => {
    usageError(["A:B", "-la", "--", "ls"], /unknown option '-la'/);
    usageError(["--frobnicate", "A:B", "--", "ls"], /unknown option/);
    usageError(["A:B", "--hostname"], /missing '--'/);
    usageError(["A:B", "--env", "--"], /'--env' needs a value/);
    usageError(["A:B", "--hostname", "--", "sh"], /'--hostname' needs a value/);
    usageError(["A:B", "--hostname", "", "--", "sh"], /non-empty/);
    usageError(["A:B", "--hostname", "x".repeat(65), "--", "sh"], /longer than 64/);
    usageError(["A:B", "--env", "NOEQUALS", "--", "sh"], /K=V/);
    usageError(["A:B", "--env", "=v", "--", "sh"], /K=V/);
    usageError(["A:B", "--workdir", "relative", "--", "sh"], /absolute/);
    usageError(["A:B", "--sys=yes", "--", "sh"], /takes no value/);
    usageError(["A:B", "--pid=yes", "--", "sh"], /--pid takes 'host' or 'private', not 'yes'/);
    usageError(["--mounted", "", "--", "sh"], /needs a value/);
  });
});

describe("containerEnv", () => {
  it("is minimal: PATH, HOME=/root, and TERM only when the caller has one", () => {
    assert.deepEqual(containerEnv([], { TERM: "xterm", SECRET: "x", PATH: "/host/bin" }), [
      `PATH=${DEFAULT_PATH}`,
      "HOME=/root",
      "TERM=xterm",
    ]);
    assert.deepEqual(containerEnv([], {}), [`PATH=${DEFAULT_PATH}`, "HOME=/root"]);
  });

  it("adds --env values in order, a later value replacing an earlier one (defaults too)", () => {
    assert.deepEqual(containerEnv(["A=1", "HOME=/home/u", "B=x=y", "A=2"], {}), [
      `PATH=${DEFAULT_PATH}`,
      "HOME=/home/u",
      "A=2",
      "B=x=y",
    ]);
  });
});
