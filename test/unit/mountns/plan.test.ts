import { strict as assert } from "node:assert";
import { MS_BIND, MS_PRIVATE, MS_RDONLY, MS_REC } from "../../../src/mountns/flags";
import {
  DEV_LINKS,
  DEV_NODES,
  MASKED_PROC_PATHS,
  READONLY_PATHS,
  describeStep,
  makedev,
  pathOf,
  resolveCommand,
  setupPlan,
  type Step,
} from "../../../src/mountns/plan";
import { decodeSpec, encodeSpec, type ContainerSpec } from "../../../src/mountns/spec";
import { signalStatus, unshareArgs } from "../../../src/mountns/unshare";

const ROOT = "/tmp/unionfs-ts-root-abc";

function spec(over: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    root: ROOT,
    argv: ["sh"],
    env: ["PATH=/bin"],
    workdir: "/",
    pid: false,
    sys: false,
    noPivot: false,
    verbose: false,
    readyFd: 3,
    ...over,
  };
}

function mountOf(steps: Step[], target: string): Extract<Step, { op: "mount" }> | undefined {
  return steps.find((s): s is Extract<Step, { op: "mount" }> => s.op === "mount" && s.target === target);
}

describe("setupPlan", () => {
  it("goes private, binds the union onto itself, pivots, and only then mounts /proc and /dev", () => {
    const steps = setupPlan(spec());
    const [first, second, grab, third] = steps;
    assert.deepEqual(first, {
      op: "mount",
      source: null,
      target: "/",
      fstype: null,
      flags: MS_REC | MS_PRIVATE,
      data: null,
      shown: "mount --make-rprivate /",
    });
    assert.equal(second?.op, "mount");
    assert.ok(second?.op === "mount" && second.source === ROOT && second.target === ROOT);
    assert.ok(second?.op === "mount" && (second.flags & MS_BIND) !== 0);
    assert.deepEqual(
      grab,
      { op: "grabTty" },
      "the caller's terminal is grabbed while the host's /dev is in reach",
    );
    assert.deepEqual(third, { op: "pivot", root: ROOT });
    const at = (pred: (s: Step) => boolean): number => steps.findIndex(pred);
    const proc = at((s) => s.op === "mount" && s.target === "/proc");
    const dev = at((s) => s.op === "mount" && s.target === "/dev");
    assert.ok(proc > 3 && dev > proc, "proc and dev come after the pivot");
    // Every later path is inside the new root: nothing after the pivot names the host path.
    for (const s of steps.slice(4)) assert.ok(!JSON.stringify(s).includes(ROOT), describeStep(s));
  });

  it("builds a minimal /dev: the nodes, pts (new instance), shm and the standard symlinks", () => {
    const steps = setupPlan(spec());
    const nodes = steps.filter((s) => s.op === "mknod").map((s) => (s.op === "mknod" ? s.path : ""));
    assert.deepEqual(
      nodes,
      DEV_NODES.map(([n]) => `/dev/${n}`),
    );
    assert.deepEqual(nodes, [
      "/dev/null",
      "/dev/zero",
      "/dev/full",
      "/dev/random",
      "/dev/urandom",
      "/dev/tty",
    ]);
    assert.ok(steps.every((s) => s.op !== "mknod" || s.mode === 0o666));
    assert.match(mountOf(steps, "/dev/pts")?.data ?? "", /newinstance/);
    assert.equal(mountOf(steps, "/dev/pts")?.fstype, "devpts");
    assert.equal(mountOf(steps, "/dev/shm")?.fstype, "tmpfs");
    const links = steps
      .filter((s) => s.op === "symlink")
      .map((s) => (s.op === "symlink" ? [s.path, s.target] : []));
    for (const [name, target] of DEV_LINKS) assert.deepEqual(links.shift(), [`/dev/${name}`, target]);
    // The mount points on /dev's tmpfs are made after it is mounted.
    const devAt = steps.findIndex((s) => s.op === "mount" && s.target === "/dev");
    assert.ok(steps.findIndex((s) => s.op === "mkdir" && s.path === "/dev/pts") > devAt);
  });

  it("mounts /sys read-only only with --sys, and sets the hostname only when given", () => {
    assert.equal(mountOf(setupPlan(spec()), "/sys"), undefined);
    const sys = mountOf(setupPlan(spec({ sys: true })), "/sys");
    assert.equal(sys?.fstype, "sysfs");
    assert.ok(((sys?.flags ?? 0) & MS_RDONLY) !== 0);
    assert.ok(!setupPlan(spec()).some((s) => s.op === "hostname"));
    assert.deepEqual(setupPlan(spec({ hostname: "box" })).at(-1), { op: "hostname", name: "box" });
  });

  it("hardens /proc as runc does, once /dev/null exists; masks /sys/firmware only with --sys", () => {
    const steps = setupPlan(spec());
    const at = (op: string, path: string): number =>
      steps.findIndex((s) => s.op === op && "path" in s && s.path === path);
    const pathsOf = (op: string, list: Step[]): string[] =>
      list.flatMap((s) => (s.op === op && "path" in s ? [s.path] : []));
    assert.deepEqual(pathsOf("readonly", steps), [...READONLY_PATHS]);
    assert.deepEqual(pathsOf("mask", steps), [...MASKED_PROC_PATHS]);
    for (const p of ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"]) {
      assert.ok(READONLY_PATHS.includes(p), p);
    }
    for (const p of ["/proc/kcore", "/proc/keys", "/proc/timer_list"])
      assert.ok(MASKED_PROC_PATHS.includes(p), p);
    const procAt = steps.findIndex((s) => s.op === "mount" && s.target === "/proc");
    assert.ok(at("readonly", "/proc/sys") > procAt);
    assert.ok(at("mask", "/proc/kcore") > at("mknod", "/dev/null"), "masks bind the container's /dev/null");
    assert.ok(!pathsOf("mask", steps).includes("/sys/firmware"));
    const sys = setupPlan(spec({ sys: true }));
    const sysAt = sys.findIndex((s) => s.op === "mount" && s.target === "/sys");
    assert.ok(sys.findIndex((s) => s.op === "mask" && s.path === "/sys/firmware") > sysAt);
  });

  it("puts the caller's terminal on /dev/console once /dev is set up", () => {
    const steps = setupPlan(spec());
    const consoleAt = steps.findIndex((s) => s.op === "console");
    assert.deepEqual(steps[consoleAt], { op: "console", path: "/dev/console" });
    assert.ok(consoleAt > steps.findIndex((s) => s.op === "symlink" && s.path === "/dev/ptmx"));
    assert.equal(steps.filter((s) => s.op === "grabTty").length, 1);
  });

  it("describes each step as a shell command", () => {
    const lines = setupPlan(spec({ sys: true, hostname: "h" })).map(describeStep);
    assert.equal(lines[0], "mount --make-rprivate /");
    assert.equal(lines[1], `mount --rbind ${ROOT} ${ROOT}`);
    assert.match(lines[2] ?? "", /^open_tree \$\(tty\)/);
    assert.equal(lines[3], `cd ${ROOT} && pivot_root . . && umount -l .`);
    assert.ok(lines.includes("mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys"));
    assert.ok(lines.some((l) => l.startsWith("mask /proc/kcore")));
    assert.ok(lines.includes("mknod -m 666 /dev/null c 1 3"));
    assert.ok(lines.includes("ln -s /proc/self/fd /dev/fd"));
    assert.ok(lines.includes("mount -t sysfs -o ro sysfs /sys"));
    assert.equal(lines.at(-1), "hostname h");
  });
});

describe("makedev", () => {
  it("encodes device numbers like glibc", () => {
    assert.equal(makedev(1, 3), 0x103);
    assert.equal(makedev(5, 0), 0x500);
    assert.equal(makedev(136, 1), 0x8801);
    assert.equal(makedev(0x1234, 0x56789), 0x1000 * 2 ** 32 + ((0x234 << 8) | 0x89 | (0x56700 << 12)));
    assert.equal(makedev(0, 0x12345678), 0x12345600 * 2 ** 12 + 0x78);
  });
});

describe("resolveCommand", () => {
  const exe = new Set(["/bin/sh", "/usr/bin/env", "/opt/app/run", "/work/tool"]);
  const isExe = (p: string): boolean => exe.has(p);

  it("searches PATH in order for a bare name", () => {
    assert.equal(resolveCommand("sh", "/usr/bin:/bin", "/", isExe), "/bin/sh");
    assert.equal(resolveCommand("env", "/usr/bin:/bin", "/", isExe), "/usr/bin/env");
    assert.equal(resolveCommand("nosuch", "/usr/bin:/bin", "/", isExe), undefined);
    assert.equal(resolveCommand("sh", "", "/", isExe), undefined);
  });

  it("takes a name with a slash as a path, relative to the workdir", () => {
    assert.equal(resolveCommand("/opt/app/run", "/bin", "/", isExe), "/opt/app/run");
    assert.equal(resolveCommand("./run", "/bin", "/opt/app", isExe), "/opt/app/run");
    assert.equal(resolveCommand("/bin/nosuch", "/bin", "/", isExe), undefined);
  });

  it("reads an empty PATH entry as the workdir", () => {
    assert.equal(resolveCommand("tool", "/bin::/usr/bin", "/work", isExe), "/work/tool");
  });

  it("takes PATH from the environment list", () => {
    assert.equal(pathOf(["HOME=/root", "PATH=/a:/b"]), "/a:/b");
    assert.equal(pathOf(["HOME=/root"]), "");
  });
});

describe("container spec", () => {
  it("round-trips through JSON", () => {
    const s = spec({ hostname: "box", pid: true, argv: ["sh", "-c", "echo 'a b'"] });
    assert.deepEqual(decodeSpec(encodeSpec(s)), s);
  });

  it("rejects what encodeSpec would never produce", () => {
    assert.throws(() => decodeSpec(undefined), /no container spec/);
    assert.throws(() => decodeSpec("{"), /not JSON/);
    assert.throws(() => decodeSpec(JSON.stringify({ ...spec(), root: "relative" })), /'root'/);
    assert.throws(() => decodeSpec(JSON.stringify({ ...spec(), argv: [] })), /'argv' is empty/);
    assert.throws(() => decodeSpec(JSON.stringify({ ...spec(), env: [1] })), /'env'/);
    assert.throws(() => decodeSpec(JSON.stringify({ ...spec(), pid: "yes" })), /'pid'/);
  });
});

describe("unshareArgs", () => {
  const prog = ["/usr/bin/node", "/x/inner.js", "{}"];

  it("always asks for a private mount namespace and an IPC namespace, then runs the program after --", () => {
    assert.deepEqual(unshareArgs({ uts: false, pid: false }, prog), [
      "--mount",
      "--propagation",
      "private",
      "--ipc",
      "--",
      ...prog,
    ]);
  });

  it("adds a UTS namespace for a hostname and forks into a PID namespace with --pid", () => {
    assert.deepEqual(unshareArgs({ uts: true, pid: true }, prog), [
      "--mount",
      "--propagation",
      "private",
      "--ipc",
      "--uts",
      "--pid",
      "--fork",
      "--kill-child",
      "--",
      ...prog,
    ]);
  });

  it("reports death by signal N as 128+N", () => {
    assert.equal(signalStatus("SIGKILL", { SIGKILL: 9 }), 137);
    assert.equal(signalStatus("SIGTERM", { SIGTERM: 15 }), 143);
  });
});
