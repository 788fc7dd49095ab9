/**
 * The `unionfs-ts` command line, end to end, against its contract:
 *
 * - bad input (missing branch, mountpoint not a directory or already a mountpoint, duplicate branch, bad
 *   mode, too many branches, unknown option) gives exactly one line on stderr and a non-zero exit, leaves
 *   nothing mounted, no daemon running and the disk exactly as it was (no work dir either);
 * - `mount` exits 0 only once the mount is live, and the daemon keeps serving in the background;
 * - `unionfs-ts umount`, plain `umount` and `fusermount3 -u` each end the mount and the daemon exits;
 * - `mount -f` stays in the foreground; SIGTERM unmounts cleanly; after SIGKILL the dead mount answers
 *   at once (no hang) and teardown detaches it, so the next test can use the same mountpoint;
 * - `-o ro`, `-o workdir=DIR`, the default work dir (hidden from the union), 128 branches.
 *
 * Every test unmounts in its afterEach hook, whether it passed or not.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { isMounted, mountsAt, mountsUnder, run, waitFor } from "../helpers/mounts";
import { diffSnapshots, snapshotTree, type SnapshotEntry } from "../helpers/snapshot";
import { file } from "../helpers/tmp";
import {
  Cleanup,
  daemonPidsFor,
  EXIT_DEADLINE_MS,
  isAlive,
  runCli,
  useCleanup,
  type CliResult,
} from "../helpers/unionfs";

const fsp = fs.promises;

/** The aufs seed demo: A (top, rw) holds a and x, B holds b and x; C is the mountpoint. */
function seed(t: Cleanup): { root: string; A: string; B: string; C: string } {
  const root = t.tree({
    A: { a: "a from A\n", x: "x from A\n" },
    B: { b: "b from B\n", x: "x from B\n" },
    C: {},
  });
  return { root, A: path.join(root, "A"), B: path.join(root, "B"), C: path.join(root, "C") };
}

/** Rejects if `p` has not settled within `ms`: a hung FUSE call shows up as a failure, not a stuck test. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function errorCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return String((err as NodeJS.ErrnoException).code);
  }
  return "no error";
}

function clip(text: string, max = 400): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

function showCli(r: CliResult): string {
  return `exit ${r.status ?? r.signal}, stderr ${clip(r.stderr)}, stdout ${clip(r.stdout)}`;
}

/** Mounts through the CLI (background), checking exit 0; the mountpoint is guarded for teardown. */
async function cliMount(t: Cleanup, args: string[], mnt: string): Promise<CliResult> {
  const r = await runCli(["mount", ...args]);
  t.guardMountpoint(mnt, r.tag);
  assert.equal(r.status, 0, `unionfs-ts mount ${clip(args.join(" "), 200)}: ${showCli(r)}`);
  return r;
}

async function waitDaemonsGone(pids: readonly number[]): Promise<void> {
  await waitFor(() => pids.every((p) => !isAlive(p)), EXIT_DEADLINE_MS, `daemon ${pids.join(", ")} to exit`);
}

describe("unionfs-ts CLI", function () {
  this.timeout(60_000);

  describe("bad input: one line on stderr, non-zero exit, nothing mounted, nothing changed", function () {
    const t = useCleanup();

    interface BadCase {
      name: string;
      /** Extra setup inside the seed tree; returns the CLI arguments after "mount". */
      args: (s: ReturnType<typeof seed>) => string[];
      /** Mounts expected at C throughout (when the case mounted something there itself). */
      mountsAtC?: number;
    }

    const cases: BadCase[] = [
      { name: "a lower branch that does not exist", args: (s) => [`${s.A}:${s.root}/missing`, s.C] },
      { name: "a top branch that does not exist", args: (s) => [`${s.root}/missing:${s.B}`, s.C] },
      {
        name: "a branch that is a file",
        args: (s) => {
          fs.writeFileSync(path.join(s.root, "F"), "f");
          return [`${s.A}:${s.root}/F`, s.C];
        },
      },
      { name: "a mountpoint that does not exist", args: (s) => [`${s.A}:${s.B}`, `${s.root}/nope`] },
      {
        name: "a mountpoint that is a file",
        args: (s) => {
          fs.writeFileSync(path.join(s.root, "M"), "m");
          return [`${s.A}:${s.B}`, `${s.root}/M`];
        },
      },
      {
        name: "a mountpoint that is already a mountpoint",
        mountsAtC: 1,
        args: (s) => {
          const r = run("mount", ["-t", "tmpfs", "-o", "size=1m", "unionfs-ts-test", s.C]);
          assert.equal(r.status, 0, `mount tmpfs: ${r.stderr}`);
          return [`${s.A}:${s.B}`, s.C];
        },
      },
      { name: "the same branch twice", args: (s) => [`${s.A}:${s.B}:${s.B}`, s.C] },
      { name: "the same branch twice, spelled differently", args: (s) => [`${s.A}:${s.B}:${s.B}/.`, s.C] },
      {
        name: "the same branch twice, once through a symlink",
        args: (s) => {
          fs.symlinkSync(s.B, path.join(s.root, "Blink"));
          return [`${s.A}:${s.B}:${s.root}/Blink`, s.C];
        },
      },
      { name: "a bad branch mode", args: (s) => [`${s.A}=rw:${s.B}=bogus`, s.C] },
      { name: "an empty branch mode", args: (s) => [`${s.A}=rw:${s.B}=`, s.C] },
      { name: "a rw branch below the top", args: (s) => [`${s.A}=ro:${s.B}=rw`, s.C] },
      {
        name: "129 read-only branches (the limit is 128 and one rw)",
        args: (s) => {
          const dirs = [`${s.A}=ro`];
          for (let i = 0; i < 128; i++) {
            const d = path.join(s.root, `L${i}`);
            fs.mkdirSync(d);
            dirs.push(d);
          }
          return [dirs.join(":"), s.C];
        },
      },
      { name: "an unknown -o option", args: (s) => ["-o", "nosuchoption", `${s.A}:${s.B}`, s.C] },
      {
        name: "an unknown -o option after a good one",
        args: (s) => ["-o", "ro,bogus=1", `${s.A}:${s.B}`, s.C],
      },
      { name: "an unknown command-line flag", args: (s) => ["--frobnicate", `${s.A}:${s.B}`, s.C] },
      { name: "a mountpoint inside a branch", args: (s) => [`${s.A}:${s.B}`, s.A] },
      // A work dir must be apart from every branch and the mountpoint (its private subdir would show in
      // the union, or be written into a read-only branch).
      {
        name: "a workdir that is a lower branch",
        args: (s) => ["-o", `workdir=${s.B}`, `${s.A}:${s.B}`, s.C],
      },
      {
        name: "a workdir that is the upper branch",
        args: (s) => ["-o", `workdir=${s.A}`, `${s.A}:${s.B}`, s.C],
      },
      {
        name: "a workdir inside the upper branch (fuse-overlayfs form)",
        args: (s) => {
          fs.mkdirSync(path.join(s.A, "sub"));
          return ["-o", `lowerdir=${s.B},upperdir=${s.A},workdir=${s.A}/sub`, s.C];
        },
      },
      {
        name: "a workdir that is the mountpoint",
        args: (s) => ["-o", `workdir=${s.C}`, `${s.A}:${s.B}`, s.C],
      },
    ];

    // -f too: a foreground mount starts its serving thread before validating (cli/main.ts), and a
    // refused one must still exit at once.
    for (const [c, fg] of cases.flatMap((k) => [[k, false] as const, [k, true] as const])) {
      it(`rejects ${c.name}${fg ? " (in the foreground)" : ""}`, async function () {
        const s = seed(t);
        const args = c.args(s);
        t.guardMountpoint(s.C);
        const mountsBefore = mountsUnder(s.root).length;
        assert.equal(mountsBefore, c.mountsAtC ?? 0);
        const snapshot = (): Promise<SnapshotEntry[]> =>
          snapshotTree(s.root, { exact: true, exclude: (rel) => rel === "C" && (c.mountsAtC ?? 0) > 0 });
        const before = await snapshot();

        const r = await runCli(["mount", ...(fg ? ["-f"] : []), ...args]);
        t.guardMountpoint(args[args.length - 1] ?? s.C, r.tag);

        assert.notEqual(r.status, 0, `expected a non-zero exit: ${showCli(r)}`);
        assert.equal(r.signal, null, `killed by a signal: ${showCli(r)}`);
        assert.match(r.stderr, /^[^\n]+\n$/, `expected exactly one line on stderr: ${showCli(r)}`);
        assert.equal(
          mountsUnder(s.root).length,
          mountsBefore,
          `something was mounted: ${mountsUnder(s.root)
            .map((m) => `${m.fsType} at ${m.mountPoint}`)
            .join(", ")}`,
        );
        await waitFor(() => daemonPidsFor(r.tag).length === 0, EXIT_DEADLINE_MS, "no daemon left running");
        const diff = diffSnapshots(before, await snapshot());
        assert.deepEqual(diff, [], `the disk changed:\n${diff.join("\n")}`);
      });
    }
  });

  describe("lifecycle", function () {
    const t = useCleanup();

    it("mount exits 0 only once the mount is live, and the daemon keeps serving", async function () {
      const s = seed(t);
      await cliMount(t, [`${s.A}:${s.B}`, s.C], s.C);
      // No waiting here: the contract is that the mount is live when the command returns.
      const fuse = mountsAt(s.C).filter((m) => m.fsType.startsWith("fuse"));
      assert.equal(
        fuse.length,
        1,
        `expected one FUSE mount at C right after exit 0, got ${mountsAt(s.C).length}`,
      );
      assert.deepEqual((await within(fsp.readdir(s.C), 10_000, "readdir C")).sort(), ["a", "b", "x"]);
      assert.equal(await within(fsp.readFile(path.join(s.C, "x"), "utf8"), 10_000, "read C/x"), "x from A\n");
    });

    it("the background daemon can be found and is not the mount command itself", async function () {
      const s = seed(t);
      const r = await cliMount(t, [`${s.A}:${s.B}`, s.C], s.C);
      const pids = daemonPidsFor(r.tag, s.C);
      assert.ok(pids.length >= 1, "no daemon process carries the test tag");
    });

    for (const how of ["unionfs-ts umount", "umount", "fusermount3 -u"] as const) {
      it(`${how} ends the mount and the daemon exits`, async function () {
        const s = seed(t);
        const r = await cliMount(t, [`${s.A}:${s.B}`, s.C], s.C);
        const pids = daemonPidsFor(r.tag, s.C);
        assert.ok(pids.length >= 1, "no daemon process found after mount");

        const u =
          how === "unionfs-ts umount"
            ? await runCli(["umount", s.C])
            : how === "umount"
              ? run("umount", [s.C])
              : run("fusermount3", ["-u", s.C]);
        assert.equal(u.status, 0, `${how}: exit ${u.status}, stderr ${JSON.stringify(u.stderr)}`);
        assert.equal(isMounted(s.C), false, `${how} returned but C is still mounted`);
        await waitDaemonsGone(pids);
      });
    }

    it("unionfs-ts umount of a path that is not mounted fails with one line", async function () {
      const s = seed(t);
      const r = await runCli(["umount", s.C]);
      assert.notEqual(r.status, 0, showCli(r));
      assert.match(r.stderr, /^[^\n]+\n$/, showCli(r));
    });

    it("regression: unionfs-ts umount through a symlink to the mountpoint unmounts it (as umount(8))", async function () {
      const s = seed(t);
      await cliMount(t, [`${s.A}:${s.B}`, s.C], s.C);
      const link = path.join(s.root, "link");
      fs.symlinkSync(s.C, link);
      const r = await runCli(["umount", link]);
      assert.equal(r.status, 0, showCli(r));
      assert.equal(isMounted(s.C), false);
    });

    it("regression: a background daemon logs a failed copy-up with its request to log=FILE (levelled lines), and keeps a pidfile", async function () {
      const s = seed(t);
      const log = path.join(s.root, "daemon.log");
      const pidFile = path.join(s.root, "daemon.pid");
      await cliMount(t, ["-o", `log=${log},pidfile=${pidFile}`, `${s.A}:${s.B}`, s.C], s.C);
      const pid = Number(fs.readFileSync(pidFile, "utf8"));
      assert.ok(isAlive(pid), "the pidfile names the live daemon");
      fs.rmSync(path.join(s.A, ".wh..wh.unionfs"), { recursive: true });
      assert.equal(
        await errorCodeOf(within(fsp.appendFile(path.join(s.C, "b"), "x"), 10_000, "append")),
        "ENOENT",
      );
      const u = run("umount", [s.C]);
      assert.equal(u.status, 0, u.stderr);
      await waitFor(() => !isAlive(pid), EXIT_DEADLINE_MS, "the daemon to exit");
      assert.equal(fs.existsSync(pidFile), false, "the pidfile is removed at exit");
      const lines = fs.readFileSync(log, "utf8").trimEnd().split("\n");
      assert.ok(
        lines.every((l) =>
          /^\d{4}-\d\d-\d\dT[\d:.]+Z unionfs-ts\[\d+\]: (error|warning|info|debug): /.test(l),
        ),
        lines.join("\n"),
      );
      assert.ok(
        lines.some((l) => /: error: OPEN "\/b" \(uid 0, pid \d+\): ENOENT: copy-up of \/b failed/.test(l)),
        lines.join("\n"),
      );
      assert.ok(
        lines.some((l) => /: info: .* is unmounted/.test(l)),
        lines.join("\n"),
      );
    });

    it("a big copy-up can be watched in the debug log: started, in progress, data copied", async function () {
      const s = seed(t);
      const log = path.join(s.root, "debug.log");
      fs.writeFileSync(path.join(s.B, "big"), Buffer.alloc(40 * 1024 * 1024, 7)); // ≥ 32 MiB: background
      await cliMount(t, ["-o", `debug,log=${log}`, `${s.A}:${s.B}`, s.C], s.C);
      await within(fsp.appendFile(path.join(s.C, "big"), "x"), 30_000, "append to big");
      assert.equal(fs.statSync(path.join(s.A, "big")).size, 40 * 1024 * 1024 + 1);
      const copyUps = fs
        .readFileSync(log, "utf8")
        .split("\n")
        .filter((l) => l.includes('copy-up "/big"'));
      assert.match(
        copyUps[0] ?? "",
        /MiB of 40\.0 MiB, [\d.]+ MiB\/s \(in the background\)$/,
        copyUps.join("\n"),
      );
      assert.match(
        copyUps.at(-1) ?? "",
        /data copied, 40\.0 MiB of 40\.0 MiB, [\d.]+ MiB\/s$/,
        copyUps.join("\n"),
      );
    });

    it("regression: a mistyped command is one line, not a branch list", async function () {
      const r = await runCli(["unmount", "C"]);
      assert.equal(r.status, 2, showCli(r));
      assert.equal(r.stderr, "unionfs-ts: unknown command 'unmount' (did you mean 'umount'?)\n");
    });

    it("mount -f serves in the foreground and exits 0 once unmounted", async function () {
      const s = seed(t);
      const m = await t.foreground(`${s.A}:${s.B}`, s.C);
      assert.equal(m.hasExited(), false, "mount -f returned while the mount is live");
      assert.equal(await within(fsp.readFile(path.join(s.C, "b"), "utf8"), 10_000, "read C/b"), "b from B\n");
      const u = run("umount", [s.C]);
      assert.equal(u.status, 0, `umount: ${u.stderr}`);
      const { code, signal } = await within(m.exited, EXIT_DEADLINE_MS, "mount -f process after umount");
      assert.equal(signal, null);
      assert.equal(code, 0, `mount -f exited ${code}; stderr: ${m.stderr()}`);
    });

    for (const debug of [["-d"], ["-o", "debug"]]) {
      it(`regression: ${debug.join(" ")} without -f serves in the foreground, its debug lines still coming (they were thrown away after ready)`, async function () {
        const s = seed(t);
        const m = await t.foreground(`${s.A}:${s.B}`, s.C, { foregroundArgs: debug });
        assert.equal(m.hasExited(), false, "mount returned while the mount is live");
        assert.equal(
          await within(fsp.readFile(path.join(s.C, "b"), "utf8"), 10_000, "read C/b"),
          "b from B\n",
        );
        await waitFor(
          () => /READ #\d+ node=\d+ "\/b" -> 0/.test(m.stderr()),
          10_000,
          "the READ of /b logged",
        );
        const u = run("umount", [s.C]);
        assert.equal(u.status, 0, `umount: ${u.stderr}`);
        const { code } = await within(m.exited, EXIT_DEADLINE_MS, "the mount process after umount");
        assert.equal(code, 0, `exited ${code}; stderr: ${m.stderr().slice(-400)}`);
      });
    }

    it("SIGTERM to a mount -f daemon unmounts cleanly", async function () {
      const s = seed(t);
      const m = await t.foreground(`${s.A}:${s.B}`, s.C);
      process.kill(m.pid, "SIGTERM");
      const { code, signal } = await within(m.exited, EXIT_DEADLINE_MS, "mount -f process after SIGTERM");
      assert.equal(signal, null, "died of SIGTERM instead of handling it");
      assert.equal(code, 0, `exit ${code}; stderr: ${m.stderr()}`);
      assert.equal(isMounted(s.C), false, "still mounted after SIGTERM");
    });

    it("-o ro: writes fail with EROFS and no branch changes", async function () {
      const s = seed(t);
      const before = await snapshotTree(s.root, { exact: true, exclude: (rel) => rel === "C" });
      await cliMount(t, ["-o", "ro", `${s.A}:${s.B}`, s.C], s.C);
      assert.equal(await within(fsp.readFile(path.join(s.C, "x"), "utf8"), 10_000, "read"), "x from A\n");
      assert.equal(await errorCodeOf(fsp.writeFile(path.join(s.C, "new"), "n")), "EROFS");
      assert.equal(await errorCodeOf(fsp.appendFile(path.join(s.C, "b"), "more")), "EROFS");
      assert.equal(await errorCodeOf(fsp.unlink(path.join(s.C, "a"))), "EROFS");
      const u = run("umount", [s.C]);
      assert.equal(u.status, 0, u.stderr);
      const diff = diffSnapshots(
        before,
        await snapshotTree(s.root, { exact: true, exclude: (rel) => rel === "C" }),
      );
      assert.deepEqual(diff, [], `branches changed under -o ro:\n${diff.join("\n")}`);
    });

    it("the default work dir is A/.wh..wh.unionfs and is hidden from the union", async function () {
      const s = seed(t);
      await cliMount(t, [`${s.A}:${s.B}`, s.C], s.C);
      await fsp.appendFile(path.join(s.C, "b"), "change\n");
      const names = await within(fsp.readdir(s.C), 10_000, "readdir C");
      assert.deepEqual(
        names.filter((n) => n.startsWith(".wh.")),
        [],
      );
      assert.equal(await errorCodeOf(fsp.lstat(path.join(s.C, ".wh..wh.unionfs"))), "ENOENT");
      assert.ok(fs.statSync(path.join(s.A, ".wh..wh.unionfs")).isDirectory(), "no work dir in A");
      assert.equal(fs.readFileSync(path.join(s.A, "b"), "utf8"), "b from B\nchange\n");
      assert.equal(fs.readFileSync(path.join(s.B, "b"), "utf8"), "b from B\n");
    });

    it("-o workdir=DIR builds copies there, not in A", async function () {
      const s = seed(t);
      const W = path.join(s.root, "W");
      fs.mkdirSync(W);
      await cliMount(t, ["-o", `workdir=${W}`, `${s.A}:${s.B}`, s.C], s.C);
      await fsp.appendFile(path.join(s.C, "b"), "change\n");
      assert.equal(fs.readFileSync(path.join(s.A, "b"), "utf8"), "b from B\nchange\n");
      assert.equal(
        fs.existsSync(path.join(s.A, ".wh..wh.unionfs")),
        false,
        "a work dir appeared in A anyway",
      );
    });

    it("regression: a writable branch that is itself a union mount is refused with one line", async function () {
      const s = seed(t);
      await cliMount(t, [`${s.A}:${s.B}`, s.C], s.C);
      const lower = path.join(s.root, "L2");
      const D = path.join(s.root, "D");
      fs.mkdirSync(lower);
      fs.mkdirSync(D);
      const r = await runCli(["mount", `${s.C}:${lower}`, D]);
      t.guardMountpoint(D, r.tag);
      assert.notEqual(r.status, 0, showCli(r));
      assert.match(r.stderr, /^unionfs-ts: cannot prepare the work dir [^\n]+ EPERM [^\n]+\n$/, showCli(r));
      assert.equal(isMounted(D), false);
    });

    it("128 read-only branches and the writable one mount and all show", async function () {
      const spec: Record<string, Record<string, ReturnType<typeof file>>> = { C: {}, U: {} };
      for (let i = 0; i < 128; i++) spec[`L${i}`] = { [`f${i}`]: file(`${i}\n`) };
      const root = t.tree(spec);
      const dirs = [
        path.join(root, "U"),
        ...Array.from({ length: 128 }, (_v, i) => path.join(root, `L${i}`)),
      ];
      const C = path.join(root, "C");
      await cliMount(t, [dirs.join(":"), C], C);
      const names = await within(fsp.readdir(C), 10_000, "readdir C");
      assert.equal(names.length, 128);
      assert.equal(await fsp.readFile(path.join(C, "f127"), "utf8"), "127\n");
      await fsp.writeFile(path.join(C, "new"), "n");
      assert.equal(fs.readFileSync(path.join(root, "U", "new"), "utf8"), "n");
    });

    it("regression: a branch whose name holds '=' or ':' is named with a backslash", async function () {
      const root = t.tree({ "a=b": { x: "x\n" }, "c:d": { y: "y\n" }, C: {} });
      const C = path.join(root, "C");
      const esc = (p: string): string => p.replace(/[\\:=]/g, (c) => `\\${c}`);
      await cliMount(t, [`${esc(path.join(root, "a=b"))}:${esc(path.join(root, "c:d"))}=ro`, C], C);
      assert.deepEqual((await within(fsp.readdir(C), 10_000, "readdir C")).sort(), ["x", "y"]);
    });
  });

  describe("after a daemon is SIGKILLed", function () {
    const shared = useCleanup("all");
    const t = useCleanup();
    let s: ReturnType<typeof seed> | undefined;
    before(function () {
      s = seed(shared);
    });

    it("the dead mount answers at once (ENOTCONN, no hang) and teardown detaches it", async function () {
      assert.ok(s);
      const m = await t.foreground(`${s.A}:${s.B}`, s.C);
      process.kill(m.pid, "SIGKILL");
      const { signal } = await within(m.exited, EXIT_DEADLINE_MS, "daemon after SIGKILL");
      assert.equal(signal, "SIGKILL");
      const code = await within(errorCodeOf(fsp.stat(path.join(s.C, "x"))), 5_000, "stat on the dead mount");
      assert.equal(code, "ENOTCONN");
    });

    it("the next test mounts on the same mountpoint", async function () {
      assert.ok(s);
      assert.equal(isMounted(s.C), false, "the previous test's teardown left C mounted");
      await t.foreground(`${s.A}:${s.B}`, s.C);
      assert.equal(await within(fsp.readFile(path.join(s.C, "x"), "utf8"), 10_000, "read C/x"), "x from A\n");
    });
  });
});
