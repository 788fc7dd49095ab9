/**
 * `unionfs-ts run`: a tiny container whose root is the union, end to end.
 *
 * The image is an aufs-style layer stack built from Debian's busybox-static (scripts/setup.sh installs it):
 *
 *   rw     (empty, fresh for each test, writable)
 *          (run puts its generated init layer here: /etc/hosts, /etc/hostname, /etc/resolv.conf, /proc, /dev)
 *   img2   /etc/.wh.motd (deletes motd), /opt/app/.wh..wh..opq (replaces app/), /opt/app/v2.txt, /etc/l2.txt
 *   img1   /etc/motd, /opt/app/{v1.txt,common}, /etc/l1.txt, /etc/shadowed
 *   base   /bin/busybox + applet links, /etc/base.txt, /etc/shadowed, /root /tmp /opt (no /proc, /dev, /sys)
 *
 * Each test gives `run` its own TMPDIR, so the union's mountpoint is made inside a directory the test
 * owns; teardown unmounts anything left there and kills anything carrying the test's tag, whether the
 * test passed or not. Every run is asserted to leave no mount and no daemon behind.
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  forceUnmount,
  isMounted,
  mountsUnder,
  readMountInfo,
  waitFor,
  type MountEntry,
} from "../helpers/mounts";
import { MASKED_PROC_PATHS, READONLY_PATHS } from "../../src/mountns/plan";
import { diffSnapshots, snapshotTree, type SnapshotEntry } from "../helpers/snapshot";
import { writeTree } from "../helpers/tmp";
import {
  Cleanup,
  cliBuilt,
  CLI_PATH,
  daemonPidsFor,
  isAlive,
  killAndWait,
  newTag,
  runCli,
  TAG_VAR,
  useCleanup,
} from "../helpers/unionfs";

const BUSYBOX = "/bin/busybox";
const APPLETS = [
  "sh",
  "ls",
  "cat",
  "echo",
  "rm",
  "mkdir",
  "ps",
  "mount",
  "hostname",
  "id",
  "touch",
  "grep",
  "wc",
  "env",
  "pwd",
  "sleep",
  "usleep",
  "head",
  "test",
  "chmod",
  "kill",
  "readlink",
  "true",
  "false",
];
/** How long a run may take before a test calls it hung (a mount alone can take ~2 s on a busy 2-core VM). */
const RUN_DEADLINE_MS = 30_000;
/** "Promptly": how soon run must end once its command or daemon was killed. */
const PROMPT_MS = 8_000;

interface Image {
  base: string;
  img1: string;
  img2: string;
}

function buildImage(t: Cleanup): Image {
  const root = t.tempDir("run-image");
  const d = (name: string): string => path.join(root, name);
  writeTree(root, {
    base: {
      bin: {},
      etc: { "base.txt": "from base\n", shadowed: "shadowed from base\n" },
      root: {},
      tmp: {},
      opt: {},
    },
    img1: {
      etc: { motd: "motd from img1\n", "l1.txt": "from img1\n", shadowed: "shadowed from img1\n" },
      opt: { app: { "v1.txt": "v1\n", common: "common v1\n" } },
    },
    img2: {
      etc: { ".wh.motd": "", "l2.txt": "from img2\n" },
      opt: { app: { ".wh..wh..opq": "", "v2.txt": "v2\n" } },
    },
  });
  fs.copyFileSync(BUSYBOX, path.join(d("base"), "bin", "busybox"));
  fs.chmodSync(path.join(d("base"), "bin", "busybox"), 0o755);
  for (const a of APPLETS) fs.symlinkSync("busybox", path.join(d("base"), "bin", a));
  fs.chmodSync(path.join(d("base"), "tmp"), 0o1777);
  return { base: d("base"), img1: d("img1"), img2: d("img2") };
}

interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

interface Started {
  child: ChildProcess;
  pid: number;
  tag: string;
  stdout(): string;
  stderr(): string;
  done: Promise<RunResult>;
}

interface Sandbox {
  /** TMPDIR given to run: its union's mountpoint appears in here. */
  tmp: string;
  rw: string;
  tag: string;
  layers: string;
}

/**
 * A fresh rw layer and TMPDIR for one test, both removed in teardown after anything still mounted in the
 * TMPDIR is taken down and anything carrying the test's tag is killed.
 */
function sandbox(t: Cleanup, img: Image): Sandbox {
  const tmp = t.tempDir("run-tmp");
  const rw = t.tempDir("run-rw");
  const tag = newTag();
  t.defer(`take down whatever run left under ${tmp}`, async () => {
    for (const m of mountsUnder(tmp).reverse()) forceUnmount(m.mountPoint);
    await killAndWait(daemonPidsFor(tag));
  });
  return { tmp, rw, tag, layers: [rw, img.img2, img.img1, img.base].join(":") };
}

interface RunOpts {
  uid?: number;
  env?: Record<string, string>;
  /** Run it on a new terminal: script(1) gives it a pty (its output, stderr included, is stdout). */
  terminal?: boolean;
}

function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, "'\\''")}'`;
}

function startRun(sb: Sandbox, args: readonly string[], opts: RunOpts = {}): Started {
  const started = Date.now();
  const argv = [process.execPath, CLI_PATH, "run", ...args];
  const [file, fileArgs] = opts.terminal
    ? // `exec`: script(1) hands the command to $SHELL -c, and a dash (SHELL unset, as in CI) would stay
      // in between, in the terminal's process group, and die of the ^C itself: script then reports 130.
      ["script", ["-qec", `exec ${argv.map(shellQuote).join(" ")}`, "/dev/null"]]
    : [argv[0] as string, argv.slice(1)];
  const child = spawn(file, fileArgs, {
    stdio: [opts.terminal ? "pipe" : "ignore", "pipe", "pipe"],
    cwd: "/",
    env: { ...process.env, TMPDIR: sb.tmp, [TAG_VAR]: sb.tag, ...opts.env },
    ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (err += b.toString()));
  const done = new Promise<RunResult>((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), RUN_DEADLINE_MS);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: out, stderr: err, durationMs: Date.now() - started });
    });
  });
  return { child, pid: child.pid ?? -1, tag: sb.tag, stdout: () => out, stderr: () => err, done };
}

async function runIn(sb: Sandbox, args: readonly string[], opts?: RunOpts): Promise<RunResult> {
  const r = await startRun(sb, args, opts).done;
  await assertNothingLeft(sb);
  return r;
}

function show(r: RunResult): string {
  return `exit ${r.status ?? r.signal} after ${r.durationMs} ms; stderr ${JSON.stringify(r.stderr)}; stdout ${JSON.stringify(r.stdout.slice(0, 2000))}`;
}

/**
 * No mount under the sandbox's TMPDIR, no union mountpoint dir left, no daemon of this test alive. The
 * mount and the dir get the daemons' deadline too: once in a CI run (2 vCPUs, busy) the union still showed
 * right after `run` ended by a ^C; a mount still there after the deadline fails as before.
 */
async function assertNothingLeft(sb: Sandbox): Promise<void> {
  const mounts = (): string[] => mountsUnder(sb.tmp).map((m) => `${m.fsType} ${m.mountPoint}`);
  await waitFor(() => mounts().length === 0, 5_000, "run's mounts to be gone").catch(() => undefined);
  assert.deepEqual(mounts(), [], "run left a mount behind");
  await waitFor(() => fs.readdirSync(sb.tmp).length === 0, 5_000, "run's dir to be gone").catch(
    () => undefined,
  );
  assert.deepEqual(fs.readdirSync(sb.tmp), [], "run left its mountpoint directory behind");
  await waitFor(() => daemonPidsFor(sb.tag).length === 0, 5_000, "every process of the run to be gone");
}

/** The daemon serving this sandbox's union (it carries the tag and UNIONFS_TS_DAEMON=1). */
function daemonOf(sb: Sandbox): number | undefined {
  return daemonPidsFor(sb.tag).find((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes("UNIONFS_TS_DAEMON=1");
    } catch {
      return false;
    }
  });
}

/**
 * Host mounts that appeared or vanished between two mount tables. Mounts other engineers' tests make
 * concurrently under the temp dir (outside this test's own dirs) are not counted.
 */
function mountChanges(before: MountEntry[], after: MountEntry[], ours: readonly string[]): string[] {
  const tmpRoots = [os.tmpdir(), "/tmp"].map((p) => `${fs.realpathSync(p)}/`);
  const relevant = (m: MountEntry): boolean =>
    ours.some((o) => m.mountPoint === o || m.mountPoint.startsWith(`${o}/`)) ||
    !tmpRoots.some((r) => m.mountPoint.startsWith(r));
  const key = (m: MountEntry): string => `${m.id} ${m.mountPoint} ${m.fsType} ${m.source}`;
  const a = new Set(before.filter(relevant).map(key));
  const b = new Set(after.filter(relevant).map(key));
  return [
    ...[...a].filter((k) => !b.has(k)).map((k) => `- ${k}`),
    ...[...b].filter((k) => !a.has(k)).map((k) => `+ ${k}`),
  ];
}

async function lowerSnapshots(img: Image): Promise<SnapshotEntry[][]> {
  return Promise.all([img.base, img.img1, img.img2].map((d) => snapshotTree(d, { exact: true })));
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

describe("unionfs-ts run (a tiny container on the union)", function () {
  this.timeout(60_000);
  const fixture = useCleanup("all");
  const t = useCleanup();
  let img: Image;

  before(function () {
    if (process.getuid?.() !== 0 || !cliBuilt()) this.skip();
    if (!fs.existsSync(BUSYBOX) || !isStaticElf(BUSYBOX)) {
      console.log(`    (skipped: no static ${BUSYBOX}; scripts/setup.sh installs busybox-static)`);
      this.skip();
    }
    img = buildImage(fixture);
  });

  it("shows the union as /: ls /, a file from each layer, the top layer winning, whiteouts honoured", async () => {
    const sb = sandbox(t, img);
    const before = readMountInfo();
    const script = [
      "ls -a /",
      "echo ---",
      "cat /etc/base.txt /etc/l1.txt /etc/l2.txt /etc/hostname /etc/shadowed",
      "echo ---",
      "ls -a /opt/app",
      "echo ---",
      "test -e /etc/motd && echo motd-visible || echo motd-hidden",
      "ls /etc | grep -c '^\\.wh\\.' || true",
      "test -e /sys && echo sys || echo no-sys",
    ].join("; ");
    const r = await runIn(sb, [sb.layers, "--", "sh", "-c", script]);
    assert.equal(r.status, 0, show(r));
    const [root, files, app, rest] = r.stdout.split("---\n");
    assert.deepEqual(lines(root ?? ""), [".", "..", "bin", "dev", "etc", "opt", "proc", "root", "tmp"]);
    assert.deepEqual(lines(files ?? ""), [
      "from base",
      "from img1",
      "from img2",
      os.hostname(),
      "shadowed from img1",
    ]);
    assert.deepEqual(lines(app ?? ""), [".", "..", "v2.txt"], "img2's opaque /opt/app hides img1's");
    assert.deepEqual(
      lines(rest ?? ""),
      ["motd-hidden", "0", "no-sys"],
      "motd whited out, no .wh. names, no /sys without --sys",
    );
    assert.equal(r.stderr, "");
    assert.deepEqual(mountChanges(before, readMountInfo(), [sb.tmp, sb.rw]), [], "host mount table changed");
  });

  it("writes land in the rw layer only; the lower layers and the host's mount table are unchanged", async () => {
    const sb = sandbox(t, img);
    const lowerBefore = await lowerSnapshots(img);
    const mountsBefore = readMountInfo();
    const script =
      "echo new > /root/new.txt && echo more >> /etc/base.txt && rm /etc/l1.txt && mkdir /data && cat /etc/base.txt";
    const r = await runIn(sb, [sb.layers, "--", "sh", "-c", script]);
    assert.equal(r.status, 0, show(r));
    assert.equal(r.stdout, "from base\nmore\n");
    const rw = (await snapshotTree(sb.rw)).filter((e) => !e.path.startsWith(".wh..wh.unionfs"));
    assert.deepEqual(
      rw.map((e) => `${e.type} ${e.path}`),
      [
        "dir .",
        "dir data",
        "dir etc",
        "file etc/.wh.l1.txt",
        "file etc/base.txt",
        "dir root",
        "file root/new.txt",
      ],
    );
    assert.equal(fs.readFileSync(path.join(sb.rw, "etc/base.txt"), "utf8"), "from base\nmore\n");
    assert.equal(fs.readFileSync(path.join(sb.rw, "root/new.txt"), "utf8"), "new\n");
    const lowerAfter = await lowerSnapshots(img);
    lowerBefore.forEach((snap, i) =>
      assert.deepEqual(diffSnapshots(snap, lowerAfter[i] ?? []), [], "a lower layer changed"),
    );
    assert.deepEqual(
      mountChanges(mountsBefore, readMountInfo(), [sb.tmp, sb.rw]),
      [],
      "host mount table changed",
    );
  });

  it("run pollutes the writable layer (no more): on an image without /proc, /dev, /sys, diff and export of rw are empty", async () => {
    const sb = sandbox(t, img);
    for (const args of [
      ["--", "true"],
      ["--sys", "--hostname", "box", "--", "true"],
    ]) {
      const r = await runIn(sb, [...args.slice(0, -2), sb.layers, ...args.slice(-2)]);
      assert.equal(r.status, 0, show(r));
    }
    const diff = await runCli(["diff", sb.rw]);
    assert.equal(diff.status, 0, diff.stderr);
    assert.equal(diff.stdout, "", "diff of the rw layer after run -- true");
    const tarFile = path.join(t.tempDir("run-export"), "rw.tar");
    const exported = await runCli(["export", "-o", tarFile, sb.rw]);
    assert.equal(exported.status, 0, exported.stderr);
    const names = tarNames(tarFile).filter((n) => n !== "./" && n !== ".");
    assert.deepEqual(names, [], "export of the rw layer after run -- true");
    for (const layer of [img.base, img.img1, img.img2]) {
      assert.ok(!fs.existsSync(path.join(layer, "proc")), `run created ${layer}/proc`);
    }
  });

  it("the init layer: /etc/hosts, /etc/hostname (--hostname), the host's resolv.conf; a write to them copies up", async () => {
    const sb = sandbox(t, img);
    const script = [
      "cat /etc/hostname",
      "grep -c '127.0.1.1.box$' /etc/hosts",
      "cat /etc/resolv.conf",
      "echo ---",
      "echo '10.0.0.1 db' >> /etc/hosts",
      "ls -d /proc /dev /sys",
    ].join("; ");
    const r = await runIn(sb, ["--hostname", "box", "--sys", sb.layers, "--", "sh", "-c", script]);
    assert.equal(r.status, 0, show(r));
    const [head, tail] = r.stdout.split("---\n");
    let resolv = "";
    try {
      resolv = fs.readFileSync("/etc/resolv.conf", "utf8");
    } catch {
      // the host has none: the container's is empty
    }
    assert.equal(head, `box\n1\n${resolv}`);
    assert.deepEqual(lines(tail ?? ""), ["/dev", "/proc", "/sys"]);
    const diff = await runCli(["diff", sb.rw]);
    assert.deepEqual(lines(diff.stdout), ["A /etc", "A /etc/hosts"], diff.stderr);
    assert.match(
      fs.readFileSync(path.join(sb.rw, "etc/hosts"), "utf8"),
      /127\.0\.1\.1\tbox\n10\.0\.0\.1 db\n$/,
    );
  });

  it("a new PID namespace by default (the host's processes and their /proc/PID/root out of sight); --pid=host shares it", async () => {
    const sb = sandbox(t, img);
    const hostBefore = os.hostname();
    const script =
      "echo pid=$$; ls /proc | grep -c '^[0-9]'; tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; " +
      "test -e /proc/$HOSTPID/root && echo host-visible || echo host-hidden";
    const env = ["--env", `HOSTPID=${process.pid}`];
    const r = await runIn(sb, ["--hostname", "box", ...env, sb.layers, "--", "sh", "-c", script]);
    assert.equal(r.status, 0, show(r));
    const [pid, count, cmdline, name, host] = lines(r.stdout);
    assert.equal(pid, "pid=1");
    assert.ok(Number(count) <= 3, `the new /proc should show only the container's processes, not ${count}`);
    assert.match(cmdline ?? "", /^sh -c echo pid=/);
    assert.equal(name, "box");
    assert.equal(host, "host-hidden", "a host process (and its root) must not be reachable through /proc");
    assert.equal(os.hostname(), hostBefore, "the host's hostname must not change");
    const shared = await runIn(sb, ["--pid=host", ...env, sb.layers, "--", "sh", "-c", script]);
    assert.equal(shared.status, 0, show(shared));
    const [hostPid, hostCount] = lines(shared.stdout);
    const visible = lines(shared.stdout).at(-1);
    assert.notEqual(hostPid, "pid=1");
    assert.ok(Number(hostCount) > 3, `--pid=host should show the host's processes, not ${hostCount}`);
    assert.equal(visible, "host-visible");
  });

  it("gives a minimal /dev, /sys read-only with --sys, the minimal environment plus --env, and --workdir", async () => {
    const sb = sandbox(t, img);
    const script = [
      "ls /dev | tr '\\n' ' '; echo",
      "echo x > /dev/null && head -c 5 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c",
      "for l in fd stdout ptmx; do readlink /dev/$l; done | tr '\\n' ' '; echo",
      "grep -E ' /dev/(pts|shm) ' /proc/self/mounts | cut -d' ' -f2,3 | tr '\\n' ' '; echo",
      "ls /sys | grep -c . ; touch /sys/x 2>/dev/null && echo sys-writable || echo sys-ro",
      "pwd; env | grep -vE '^(SHLVL|PWD)=' | sort | tr '\\n' ' '; echo",
    ].join("; ");
    const r = await runIn(
      sb,
      [
        "--sys",
        "--workdir",
        "/opt/app",
        "--env",
        "FOO=bar baz",
        "-e",
        "HOME=/home/x",
        sb.layers,
        "--",
        "sh",
        "-c",
        script,
      ],
      { env: { TERM: "xterm-test", HOST_ONLY: "leak" } },
    );
    assert.equal(r.status, 0, show(r));
    const [dev, five, three, links, mounts, sysCount, sysRo, pwd, env] = lines(r.stdout);
    assert.equal(dev?.trim(), "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero");
    assert.deepEqual([five?.trim(), three?.trim()], ["5", "3"]);
    assert.equal(links?.trim(), "/proc/self/fd /proc/self/fd/1 pts/ptmx");
    assert.equal(mounts?.trim(), "/dev/pts devpts /dev/shm tmpfs");
    assert.ok(Number(sysCount) > 0, "/sys should be mounted with --sys");
    assert.equal(sysRo, "sys-ro");
    assert.equal(pwd, "/opt/app");
    assert.equal(
      env?.trim(),
      "FOO=bar baz HOME=/home/x PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=xterm-test",
    );
  });

  it("passes exit statuses through (128+N for signal N), and --mounted leaves its mount in place", async () => {
    const sb = sandbox(t, img);
    const mnt = path.join(t.tempDir("run-mnt"), "c");
    fs.mkdirSync(mnt);
    await t.union(sb.layers, mnt);
    const seven = await startRun(sb, ["--mounted", mnt, "--", "sh", "-c", "cat /etc/l2.txt; exit 7"]).done;
    assert.equal(seven.status, 7, show(seven));
    assert.equal(seven.stdout, "from img2\n");
    // Only outside a PID namespace: its PID 1 cannot be killed from inside.
    const killed = await startRun(sb, ["--pid=host", "--mounted", mnt, "--", "sh", "-c", "kill -9 $$"]).done;
    assert.equal(killed.status, 137, `death by SIGKILL is 128+9: ${show(killed)}`);
    assert.ok(isMounted(mnt), "--mounted must leave the mount in place");
  });

  it("SIGKILL of the unshare child (--pid) ends the whole container promptly and unmounts", async () => {
    const sb = sandbox(t, img);
    const run = startRun(sb, ["--pid", sb.layers, "--", "sh", "-c", "echo ready; exec sleep 31.5"]);
    await waitFor(() => run.stdout().includes("ready"), RUN_DEADLINE_MS, "the container to start");
    const unshare = childPids(run.pid);
    assert.equal(unshare.length, 1, `run should have one child (unshare), not ${unshare.join(" ")}`);
    const sleeper = childPids(unshare[0] as number);
    const killedAt = Date.now();
    process.kill(unshare[0] as number, "SIGKILL");
    const r = await run.done;
    assert.ok(Date.now() - killedAt < PROMPT_MS, `run took ${Date.now() - killedAt} ms to end`);
    assert.equal(r.status, 137, show(r));
    await waitFor(() => sleeper.every((p) => !isAlive(p)), 5_000, "the container's PID 1 to die");
    await assertNothingLeft(sb);
  });

  it("a killed FUSE daemon gives the contained program ENOTCONN (no hang); run ends and cleans up", async () => {
    const sb = sandbox(t, img);
    // The loop runs from a copy of busybox on /dev/shm, so it keeps running when the union dies and
    // reports what its reads get; it ignores SIGTERM so that its own error, not run's stop, ends it.
    const inner =
      'trap "" TERM; echo ready; while /dev/shm/busybox cat /etc/base.txt >/dev/null; do /dev/shm/busybox usleep 20000; done; echo loop-ended; /dev/shm/busybox cat /etc/base.txt; exit 3';
    const script = `cat /bin/busybox > /dev/shm/busybox && chmod 755 /dev/shm/busybox && exec /dev/shm/busybox sh -c '${inner}'`;
    const run = startRun(sb, [sb.layers, "--", "sh", "-c", script]);
    await waitFor(() => run.stdout().includes("ready"), RUN_DEADLINE_MS, "the container to start");
    const daemon = daemonOf(sb);
    assert.ok(daemon !== undefined, "the daemon should be found by its tag");
    const killedAt = Date.now();
    process.kill(daemon, "SIGKILL");
    const r = await run.done;
    assert.ok(Date.now() - killedAt < PROMPT_MS, `run took ${Date.now() - killedAt} ms to end`);
    assert.equal(r.status, 3, show(r));
    // The read the abort interrupts may fail ECONNABORTED; every later one fails ENOTCONN.
    assert.match(
      r.stderr,
      /can't open '\/etc\/base.txt': (Software caused connection abort|Transport endpoint is not connected)\n/,
    );
    // The last read (after the loop) fails ENOTCONN; run's own line about the dead daemon may come
    // before or after it.
    const reads = r.stderr.split("\n").filter((l) => l.includes("can't open"));
    assert.match(reads[reads.length - 1] ?? "", /Transport endpoint is not connected$/, show(r));
    assert.match(r.stdout, /loop-ended/);
    await assertNothingLeft(sb);
  });

  it("a killed FUSE daemon under a command that never touches its files: run stops it and exits non-zero", async () => {
    const sb = sandbox(t, img);
    const run = startRun(sb, ["--pid", sb.layers, "--", "sh", "-c", "echo ready; exec sleep 32.5"]);
    await waitFor(() => run.stdout().includes("ready"), RUN_DEADLINE_MS, "the container to start");
    const daemon = daemonOf(sb);
    assert.ok(daemon !== undefined, "the daemon should be found by its tag");
    const killedAt = Date.now();
    process.kill(daemon, "SIGKILL");
    const r = await run.done;
    assert.ok(Date.now() - killedAt < PROMPT_MS, `run took ${Date.now() - killedAt} ms to end`);
    assert.notEqual(r.status, 0, show(r));
    assert.match(r.stderr, /daemon serving .* died/);
    await assertNothingLeft(sb);
  });

  it("SIGTERM to run stops the container (a PID 1 without a handler dies of it: 143) and unmounts", async () => {
    const sb = sandbox(t, img);
    const run = startRun(sb, [sb.layers, "--", "sh", "-c", "echo ready; exec sleep 33.5"]);
    await waitFor(() => run.stdout().includes("ready"), RUN_DEADLINE_MS, "the container to start");
    run.child.kill("SIGTERM");
    const r = await run.done;
    assert.equal(r.status, 143, show(r));
    await assertNothingLeft(sb);
  });

  it("/proc hardened as runc does: /proc/sys and co. read-only (echo 1 > /proc/sys/vm/drop_caches fails), kcore, keys, timer_list and co. masked", async () => {
    const sb = sandbox(t, img);
    const readonly = READONLY_PATHS.filter((p) => fs.existsSync(p));
    const masked = [...MASKED_PROC_PATHS, "/sys/firmware"].filter((p) => fs.existsSync(p));
    const script = [
      "echo 1 > /proc/sys/vm/drop_caches && echo written || echo refused",
      `for p in ${readonly.join(" ")}; do awk -v p=$p '$5 == p { split($6, o, ","); print p, o[1] }' /proc/self/mountinfo; done`,
      `for p in ${masked.join(" ")}; do if [ -d $p ]; then echo $p $(ls -A $p | wc -l); else echo $p $(cat $p | wc -c); fi; done`,
    ].join("; ");
    const r = await runIn(sb, ["--sys", sb.layers, "--", "sh", "-c", script]);
    assert.equal(r.status, 0, show(r));
    assert.deepEqual(lines(r.stdout), [
      "refused",
      ...readonly.map((p) => `${p} ro`),
      ...masked.map((p) => `${p} 0`),
    ]);
    assert.match(r.stderr, /drop_caches: Read-only file system/);
    assert.ok(readonly.includes("/proc/sys"));
  });

  it("a working tty: tty names the caller's terminal (/dev/console), no other host pty is visible", async function () {
    if (spawnSync("script", ["--version"]).status !== 0) {
      console.log("      (skipped: no script(1); apt-get install bsdutils)");
      this.skip();
    }
    const sb = sandbox(t, img);
    const script = "tty; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; ls /dev/pts; echo $TERM";
    const run = startRun(sb, [sb.layers, "--", "sh", "-c", script], {
      terminal: true,
      env: { TERM: "xterm-test" },
    });
    const r = await run.done;
    await assertNothingLeft(sb);
    assert.equal(r.status, 0, show(r));
    assert.deepEqual(lines(r.stdout.replace(/\r/g, "")), ["/dev/console", "all-ttys", "ptmx", "xterm-test"]);
    const plain = await runIn(sb, [
      sb.layers,
      "--",
      "sh",
      "-c",
      "tty; test -e /dev/console || echo no-console",
    ]);
    assert.deepEqual(lines(plain.stdout), ["not a tty", "no-console"], show(plain));
  });

  it("^C on the terminal ends a PID 1 without a SIGINT handler (run stands in for the default action: 130)", async function () {
    if (spawnSync("script", ["--version"]).status !== 0) this.skip();
    const sb = sandbox(t, img);
    const run = startRun(sb, [sb.layers, "--", "sh", "-c", "echo ready; exec sleep 35.5"], {
      terminal: true,
    });
    await waitFor(() => run.stdout().includes("ready"), RUN_DEADLINE_MS, "the container to start");
    run.child.stdin?.write("\x03");
    const r = await run.done;
    await assertNothingLeft(sb);
    assert.equal(r.status, 130, show(r));
    assert.deepEqual(pidsRunning("sleep\x0035.5"), []);
    // A PID 1 with a handler gets the ^C itself.
    const trapped = startRun(
      sb,
      [sb.layers, "--", "sh", "-c", "trap 'echo got-int; exit 3' INT; echo ready; while :; do sleep 1; done"],
      { terminal: true },
    );
    await waitFor(() => trapped.stdout().includes("ready"), RUN_DEADLINE_MS, "the container to start");
    trapped.child.stdin?.write("\x03");
    const t3 = await trapped.done;
    await assertNothingLeft(sb);
    assert.equal(t3.status, 3, show(t3));
    assert.match(t3.stdout, /got-int/);
  });

  it("kills what COMMAND left running in the container, so no namespace keeps a copy of the union", async () => {
    const sb = sandbox(t, img);
    // With --pid=host run kills it; in a PID namespace the kernel does, as PID 1 ends.
    const r = await runIn(sb, ["--pid=host", sb.layers, "--", "sh", "-c", "sleep 34.5 & echo started"]);
    assert.equal(r.status, 0, show(r));
    assert.equal(r.stdout, "started\n");
    assert.match(r.stderr, /killed 1 process\(es\) still running in the container/);
    assert.deepEqual(pidsRunning("sleep\x0034.5"), [], "the background sleep should be gone");
    const own = await runIn(sb, [sb.layers, "--", "sh", "-c", "sleep 34.6 & echo started"]);
    assert.equal(own.status, 0, show(own));
    assert.deepEqual(pidsRunning("sleep\x0034.6"), [], "the background sleep should be gone");
  });

  it("--keep leaves the union mounted (and says where)", async () => {
    const sb = sandbox(t, img);
    const r = await startRun(sb, ["--keep", sb.layers, "--", "sh", "-c", "echo kept > /root/k"]).done;
    assert.equal(r.status, 0, show(r));
    const m = /stays mounted at (\S+)/.exec(r.stderr);
    assert.ok(m?.[1], `run should say where the union stays: ${show(r)}`);
    assert.ok(isMounted(m[1]));
    assert.equal(fs.readFileSync(path.join(m[1], "root/k"), "utf8"), "kept\n");
    // teardown (sandbox) unmounts it
  });

  it("falls back to chroot, saying so, where pivot_root is impossible (forced here)", async () => {
    const sb = sandbox(t, img);
    const r = await runIn(sb, ["--hostname", "chrooted", sb.layers, "--", "cat", "/etc/hostname"], {
      env: { UNIONFS_TS_RUN_NO_PIVOT: "1" },
    });
    assert.equal(r.status, 0, show(r));
    assert.equal(r.stdout, "chrooted\n");
    assert.match(r.stderr, /^unionfs-ts: .*chroot/);
  });

  it("not root: one line on stderr, non-zero exit, nothing mounted", async function () {
    // An unprivileged user must be able to load the CLI at all; a checkout under a 0700 directory
    // (e.g. a clone in `mktemp -d`) makes that impossible, whatever unionfs-ts does.
    const blocked = unreadableByOthers(CLI_PATH);
    if (blocked !== undefined) {
      console.log(
        `      (skipped: ${blocked} is not readable by other users, so uid 65534 cannot run the CLI)`,
      );
      this.skip();
    }
    const sb = sandbox(t, img);
    const r = await runIn(sb, [sb.layers, "--", "sh"], { uid: 65534 });
    assert.notEqual(r.status, 0, show(r));
    assert.equal(r.stderr.split("\n").filter((l) => l !== "").length, 1, show(r));
    assert.match(r.stderr, /^unionfs-ts: /);
    assert.match(r.stderr, /root/);
  });

  it("bad input: one line on stderr, non-zero exit, nothing mounted", async () => {
    const sb = sandbox(t, img);
    const missing = path.join(sb.tmp, "..", "no-such-layer-dir");
    const cases: Array<{ args: string[]; re: RegExp; uid?: number }> = [
      { args: [`${sb.rw}:${missing}`, "--", "sh"], re: /does not exist/ },
      { args: [sb.layers, "sh", "-c", "true"], re: /missing '--'/ },
      { args: [sb.layers, "--"], re: /no COMMAND/ },
      { args: [sb.layers, "--", "no-such-command"], re: /not found inside the container/ },
    ];
    for (const c of cases) {
      const r = await runIn(sb, c.args, c.uid === undefined ? {} : { uid: c.uid });
      assert.notEqual(r.status, 0, `${c.args.join(" ")}: ${show(r)}`);
      assert.equal(r.stderr.split("\n").filter((l) => l !== "").length, 1, `${c.args.join(" ")}: ${show(r)}`);
      assert.match(r.stderr, /^unionfs-ts: /);
      assert.match(r.stderr, c.re);
    }
  });
});

/** The first directory on the way to `file` that other users cannot search, or `file` if unreadable. */
function unreadableByOthers(file: string): string | undefined {
  const abs = path.resolve(file);
  for (let dir = path.dirname(abs); ; dir = path.dirname(dir)) {
    if ((fs.statSync(dir).mode & 0o001) === 0) return dir;
    if (dir === "/") break;
  }
  return (fs.statSync(abs).mode & 0o004) === 0 ? abs : undefined;
}

/** PIDs whose command line contains `needle` (NUL-separated arguments). */
function pidsRunning(needle: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, "latin1").includes(needle) && isAlive(Number(name))) {
        out.push(Number(name));
      }
    } catch {
      // gone
    }
  }
  return out;
}

/** True when the ELF file at `p` has no program interpreter (PT_INTERP): it runs in an empty root. */
function isStaticElf(p: string): boolean {
  const buf = fs.readFileSync(p);
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (buf.readUInt32LE(phoff + i * phentsize) === 3) return false;
  return true;
}

/** The member names of a tar archive, in order (tar -t). */
function tarNames(file: string): string[] {
  const r = spawnSync("tar", ["-tf", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return lines(r.stdout);
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1").trim();
    if (text !== "") out.push(...text.split(/\s+/).map(Number));
  }
  return out;
}
