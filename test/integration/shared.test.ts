/**
 * `-o shared`: mounts served by one resident process per (uid, mount namespace) (src/cli/shared), end to
 * end through the CLI.
 *
 * - Two mounts are served by one server process, which exits once the last of them is unmounted (and
 *   takes its socket with it).
 * - One mount's core failing fails that mount's requests only (EIO); the other mounts go on.
 * - The serving thread, which serves every mount of the server, dying ends all of them (detached, not
 *   left hanging), and the next mount is served (the crash is a test core's process.exit in the
 *   thread, crash-core.ts).
 * - Bad input: one line on stderr, a non-zero exit, nothing mounted, no server left.
 *
 * Each test uses a socket directory of its own (UNIONFS_TS_SOCKET_DIR), so a server of the host is never
 * involved, and one test tag for all its commands, which the server inherits. Teardown unmounts every
 * mountpoint and SIGKILLs a process carrying the test's tag still alive.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { forceUnmount, isMounted, waitFor } from "../helpers/mounts";
import {
  Cleanup,
  cliBuilt,
  daemonPidsFor,
  EXIT_DEADLINE_MS,
  isAlive,
  killAndWait,
  MOUNT_DEADLINE_MS,
  newTag,
  runCli,
  useCleanup,
} from "../helpers/unionfs";
import { CRASH_NAME } from "./shared/crash-core";

const CORE = require.resolve("./shared/crash-core");

interface Env {
  base: string;
  sockDir: string;
  /** Given to every CLI run of the test: a server inherits it from the command that started it. */
  tag: string;
}

/** Runs `fn` with `vars` set in this process's environment (which runCli passes to the CLI). */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.keys(vars).map((k) => [k, process.env[k]] as const);
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The tags of the running test; whatever process carries one is the test's. */
const tags = new Set<string>();

/** The shared server of the test (the processes carrying its tag: the commands are gone by then). */
function serverOf(e: Env): number[] {
  return daemonPidsFor(e.tag);
}

function setUp(t: Cleanup): Env {
  const base = t.tempDir("shared");
  const sockDir = path.join(base, "sock");
  fs.mkdirSync(sockDir, { mode: 0o700 });
  fs.mkdirSync(path.join(base, "lower"));
  fs.writeFileSync(path.join(base, "lower", "hello.txt"), "hello\n");
  const tag = newTag();
  tags.add(tag);
  return { base, sockDir, tag };
}

/** Mounts `name` (upper NAME-up over the shared lower) with -o shared; returns the pid serving it. */
async function sharedMount(t: Cleanup, e: Env, name: string, extraEnv: Record<string, string> = {}) {
  const up = path.join(e.base, `${name}-up`);
  const mnt = path.join(e.base, `${name}-mnt`);
  const pidFile = path.join(e.base, `${name}.pid`);
  fs.mkdirSync(up);
  fs.mkdirSync(mnt);
  t.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
  const r = await withEnv({ UNIONFS_TS_SOCKET_DIR: e.sockDir, ...extraEnv }, () =>
    runCli(["mount", "-o", `shared,pidfile=${pidFile}`, `${up}:${path.join(e.base, "lower")}`, mnt], {
      tag: e.tag,
    }),
  );
  assert.equal(r.status, 0, `mount ${name}: ${r.stderr}`);
  assert.equal(r.stderr, "");
  assert.ok(isMounted(mnt), `${mnt} is not mounted after the command said so`);
  return { mnt, pid: Number(fs.readFileSync(pidFile, "utf8")) };
}

function socketsIn(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(".sock"));
}

describe("shared serving process (-o shared)", function () {
  this.timeout(4 * MOUNT_DEADLINE_MS);
  const t = useCleanup();

  before(function () {
    if (!cliBuilt() || process.getuid?.() !== 0) this.skip();
  });

  afterEach(async function () {
    this.timeout(2 * EXIT_DEADLINE_MS);
    // After useCleanup's unmounts (registered first, run first): a server still alive is a failure of
    // the test, but is never left behind.
    const left = [...tags].flatMap((tag) => daemonPidsFor(tag));
    tags.clear();
    await killAndWait(left);
  });

  it("serves two mounts from one process, which exits with its last mount", async () => {
    const e = setUp(t);
    const a = await sharedMount(t, e, "a");
    const b = await sharedMount(t, e, "b");
    assert.equal(b.pid, a.pid, "the second mount has a server of its own");
    assert.ok(fs.readFileSync(`/proc/${a.pid}/cmdline`, "utf8").includes("server-main.js"));
    assert.equal(fs.readFileSync(path.join(a.mnt, "hello.txt"), "utf8"), "hello\n");
    fs.writeFileSync(path.join(b.mnt, "only-b.txt"), "b\n");
    assert.equal(fs.existsSync(path.join(a.mnt, "only-b.txt")), false);
    assert.equal(socketsIn(e.sockDir).length, 1);
    assert.deepEqual(serverOf(e), [a.pid]);

    const u = await runCli(["umount", a.mnt]);
    assert.equal(u.status, 0, u.stderr);
    assert.ok(isAlive(a.pid), "the server exited while it still served a mount");
    assert.equal(fs.readFileSync(path.join(b.mnt, "only-b.txt"), "utf8"), "b\n");

    assert.equal((await runCli(["umount", b.mnt])).status, 0);
    await waitFor(() => !isAlive(a.pid), EXIT_DEADLINE_MS, "the server to exit after its last unmount");
    assert.deepEqual(socketsIn(e.sockDir), [], "the server left its socket behind");
  });

  it("regression: a mount whose core fails answers EIO, and the other mounts of the thread go on", async () => {
    const e = setUp(t);
    const a = await sharedMount(t, e, "a", { UNIONFS_TS_TEST_FACTORY: `${CORE}#failOnName` });
    const b = await sharedMount(t, e, "b");
    assert.equal(b.pid, a.pid);
    assert.throws(() => fs.statSync(path.join(a.mnt, CRASH_NAME)), { code: "EIO" });
    assert.equal(fs.readFileSync(path.join(a.mnt, "hello.txt"), "utf8"), "hello\n");
    fs.writeFileSync(path.join(b.mnt, "after.txt"), "after\n");
    assert.deepEqual(fs.readdirSync(b.mnt).sort(), ["after.txt", "hello.txt"]);
    assert.equal((await runCli(["umount", a.mnt])).status, 0);
    assert.equal((await runCli(["umount", b.mnt])).status, 0);
    await waitFor(() => !isAlive(a.pid), EXIT_DEADLINE_MS, "the server to exit after its last unmount");
  });

  it("regression: a serving thread that dies ends every mount it served (detached); the next mount is served", async () => {
    const e = setUp(t);
    const a = await sharedMount(t, e, "a", { UNIONFS_TS_TEST_FACTORY: `${CORE}#crashOnName` });
    const b = await sharedMount(t, e, "b");
    assert.equal(b.pid, a.pid);
    assert.throws(() => fs.statSync(path.join(a.mnt, CRASH_NAME)));
    await waitFor(() => !isMounted(a.mnt), MOUNT_DEADLINE_MS, "the dead mount to be detached");
    await waitFor(() => !isMounted(b.mnt), MOUNT_DEADLINE_MS, "the other mount of the dead thread to go");
    // With nothing left to serve, the server exits; a new mount is served either way.
    await waitFor(() => !isAlive(a.pid), EXIT_DEADLINE_MS, "the server to exit with no mount left");
    const c = await sharedMount(t, e, "c");
    assert.equal(fs.readFileSync(path.join(c.mnt, "hello.txt"), "utf8"), "hello\n");
    fs.writeFileSync(path.join(c.mnt, "after.txt"), "after\n");
    assert.equal(fs.readFileSync(path.join(e.base, "c-up", "after.txt"), "utf8"), "after\n");
    assert.equal((await runCli(["umount", c.mnt])).status, 0);
    await waitFor(() => !isAlive(c.pid), EXIT_DEADLINE_MS, "the server to exit after its last unmount");
  });

  it("mounts the -o lowerdir= form (UNIONFS_TS_SHARED=1), and fusermount3 -u ends it", async () => {
    const e = setUp(t);
    const mnt = path.join(e.base, "mnt");
    for (const d of ["mnt", "up", "work"]) fs.mkdirSync(path.join(e.base, d));
    t.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
    const o = `lowerdir=${e.base}/lower,upperdir=${e.base}/up,workdir=${e.base}/work`;
    const env = { UNIONFS_TS_SOCKET_DIR: e.sockDir, UNIONFS_TS_SHARED: "1" };
    const r = await withEnv(env, () => runCli(["-o", o, "-v", "name", mnt], { tag: e.tag }));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^unionfs-ts: serving .* \(transport: kernel, .*, shared\) as pid \d+\n$/);
    assert.equal(fs.readFileSync(path.join(mnt, "hello.txt"), "utf8"), "hello\n");
    fs.writeFileSync(path.join(mnt, "new.txt"), "new\n");
    assert.equal(fs.readFileSync(path.join(e.base, "up", "new.txt"), "utf8"), "new\n");
    const [server] = serverOf(e);
    assert.ok(server !== undefined, "no server process");
    const u = spawnSync("fusermount3", ["-u", mnt], { encoding: "utf8" });
    assert.equal(u.status, 0, u.stderr);
    await waitFor(() => !isAlive(server), EXIT_DEADLINE_MS, "the server to exit after fusermount3 -u");
  });

  it("bad input: one line, non-zero exit, nothing mounted, no server left", async () => {
    const e = setUp(t);
    const mnt = path.join(e.base, "mnt");
    fs.mkdirSync(mnt);
    t.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
    const cases: Array<[string[], RegExp]> = [
      [["-o", "shared", `${e.base}/nope:${e.base}/lower`, mnt], /^unionfs-ts: .*nope/],
      [["-o", "shared,bogus", `${e.base}/lower`, mnt], /^unionfs-ts: unknown mount option 'bogus'$/],
      [["-o", "shared,lowerdir=", mnt], /^unionfs-ts: mount option 'lowerdir' needs a value$/],
      [["-o", "shared", `${e.base}/lower`, `${e.base}/missing`], /^unionfs-ts: .*missing/],
    ];
    for (const [args, want] of cases) {
      const r = await withEnv({ UNIONFS_TS_SOCKET_DIR: e.sockDir }, () =>
        runCli(["mount", ...args], { tag: e.tag }),
      );
      assert.notEqual(r.status, 0, `${args.join(" ")}: exit 0`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(lines[0] ?? "", want);
      assert.equal(isMounted(mnt), false);
    }
    const gone = () => socketsIn(e.sockDir).length === 0 && serverOf(e).length === 0;
    await waitFor(gone, EXIT_DEADLINE_MS, "the server to go");
  });
});
