/**
 * The container's setup as data: the ordered steps the helper performs inside the new mount namespace,
 * and the PATH search for COMMAND. Pure (no syscalls), so the order and the details are unit-tested.
 *
 * Invariants (the order matters):
 * 1. propagation private, recursively, before anything is mounted: nothing reaches the host;
 * 2. the union bind-mounted onto itself (pivot_root needs a mount point that is not the current root);
 * 3. pivot_root into it with the old root detached (`pivot_root . .` then `umount -l .`: the old root
 *    is never given a directory in the union, so nothing is created in, or left in, the rw layer);
 * 4. then, inside the new root: /proc, a minimal /dev, the caller's terminal on /dev/console (grabbed
 *    before the pivot, while it is still reachable), /proc hardened as runc does by default (a few paths
 *    read-only, others masked: needs /dev/null, so after /dev), /sys (read-only) only when asked, its
 *    firmware masked; hostname.
 * Directories the mounts need (/proc, /dev, /sys) are created in the union only when it lacks them: never
 * for run's own unions, whose init layer holds them (initlayer.ts), only with --mounted.
 */
import * as posixPath from "node:path/posix";
import type { ContainerSpec } from "./spec";
import {
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_STRICTATIME,
} from "./flags";

export type Step =
  | {
      op: "mount";
      source: string | null;
      target: string;
      fstype: string | null;
      flags: number;
      data: string | null;
      /** How mount(8) would say it, for --verbose and error messages. */
      shown: string;
    }
  /** mkdir when missing (for mount points in the union). */
  | { op: "ensureDir"; path: string }
  /** mkdir with an exact mode (on the fresh /dev tmpfs). */
  | { op: "mkdir"; path: string; mode: number }
  /** chdir root; pivot_root(".", "."); umount2(".", MNT_DETACH); chdir("/"). */
  | { op: "pivot"; root: string }
  | { op: "mknod"; path: string; major: number; minor: number; mode: number }
  | { op: "symlink"; target: string; path: string }
  | { op: "hostname"; name: string }
  /** A path made read-only: bind-mounted onto itself, then remounted ro (skipped when absent). */
  | { op: "readonly"; path: string }
  /** A path hidden: /dev/null bound over a file, an empty read-only tmpfs over a directory (when present). */
  | { op: "mask"; path: string }
  /** Before the pivot: a detached bind mount of the caller's terminal, if stdin/out/err is one. */
  | { op: "grabTty" }
  /** After /dev: that terminal on /dev/console, and the descriptors that were it reopened from there. */
  | { op: "console"; path: string };

/** runc's default read-only paths (libcontainer/specconv, as Docker and podman use them). */
export const READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/** runc's default masked paths under /proc (/sys/firmware is masked too when /sys is mounted). */
export const MASKED_PROC_PATHS: readonly string[] = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
];

/** The device nodes of the minimal /dev: name, major, minor (all mode 0666). */
export const DEV_NODES: ReadonlyArray<readonly [string, number, number]> = [
  ["null", 1, 3],
  ["zero", 1, 5],
  ["full", 1, 7],
  ["random", 1, 8],
  ["urandom", 1, 9],
  ["tty", 5, 0],
];

/** The standard /dev symlinks. */
export const DEV_LINKS: ReadonlyArray<readonly [string, string]> = [
  ["fd", "/proc/self/fd"],
  ["stdin", "/proc/self/fd/0"],
  ["stdout", "/proc/self/fd/1"],
  ["stderr", "/proc/self/fd/2"],
  ["ptmx", "pts/ptmx"],
];

function mountStep(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
  shown: string,
): Step {
  return { op: "mount", source, target, fstype, flags, data, shown };
}

/** Every step, in order, that turns the fresh namespace into the container described by `spec`. */
export function setupPlan(spec: ContainerSpec): Step[] {
  const root = spec.root;
  const steps: Step[] = [
    mountStep(null, "/", null, MS_REC | MS_PRIVATE, null, "mount --make-rprivate /"),
    mountStep(root, root, null, MS_BIND | MS_REC, null, `mount --rbind ${root} ${root}`),
    { op: "grabTty" },
    { op: "pivot", root },
    { op: "ensureDir", path: "/proc" },
    mountStep("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, null, "mount -t proc proc /proc"),
    { op: "ensureDir", path: "/dev" },
    mountStep(
      "tmpfs",
      "/dev",
      "tmpfs",
      MS_NOSUID | MS_STRICTATIME,
      "mode=755,size=65536k",
      "mount -t tmpfs -o mode=755 tmpfs /dev",
    ),
  ];
  for (const [name, major, minor] of DEV_NODES) {
    steps.push({ op: "mknod", path: `/dev/${name}`, major, minor, mode: 0o666 });
  }
  steps.push(
    { op: "mkdir", path: "/dev/pts", mode: 0o755 },
    mountStep(
      "devpts",
      "/dev/pts",
      "devpts",
      MS_NOSUID | MS_NOEXEC,
      "newinstance,ptmxmode=0666,mode=0620",
      "mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts",
    ),
    { op: "mkdir", path: "/dev/shm", mode: 0o1777 },
    mountStep(
      "shm",
      "/dev/shm",
      "tmpfs",
      MS_NOSUID | MS_NODEV,
      "mode=1777,size=65536k",
      "mount -t tmpfs -o mode=1777 shm /dev/shm",
    ),
  );
  for (const [name, target] of DEV_LINKS) steps.push({ op: "symlink", target, path: `/dev/${name}` });
  steps.push({ op: "console", path: "/dev/console" });
  for (const path of READONLY_PATHS) steps.push({ op: "readonly", path });
  for (const path of MASKED_PROC_PATHS) steps.push({ op: "mask", path });
  if (spec.sys) {
    steps.push(
      { op: "ensureDir", path: "/sys" },
      mountStep(
        "sysfs",
        "/sys",
        "sysfs",
        MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
        null,
        "mount -t sysfs -o ro sysfs /sys",
      ),
      { op: "mask", path: "/sys/firmware" },
    );
  }
  if (spec.hostname !== undefined) steps.push({ op: "hostname", name: spec.hostname });
  return steps;
}

/** One line per step, as a shell user would write it (for --verbose). */
export function describeStep(step: Step): string {
  switch (step.op) {
    case "mount":
      return step.shown;
    case "ensureDir":
      return `mkdir -p ${step.path}`;
    case "mkdir":
      return `mkdir -m ${step.mode.toString(8)} ${step.path}`;
    case "pivot":
      return `cd ${step.root} && pivot_root . . && umount -l .`;
    case "mknod":
      return `mknod -m ${step.mode.toString(8)} ${step.path} c ${step.major} ${step.minor}`;
    case "symlink":
      return `ln -s ${step.target} ${step.path}`;
    case "hostname":
      return `hostname ${step.name}`;
    case "readonly":
      return `mount --bind ${step.path} ${step.path} && mount -o remount,bind,ro ${step.path}`;
    case "mask":
      return `mask ${step.path} (/dev/null bound over a file, an empty read-only tmpfs over a directory)`;
    case "grabTty":
      return "open_tree $(tty) (the caller's terminal, if any, while the host's /dev is in reach)";
    case "console":
      return `move_mount that terminal ${step.path}; reopen stdin/stdout/stderr from it`;
  }
}

/** glibc's makedev: the dev_t of a device number pair. */
export function makedev(major: number, minor: number): number {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  const dev =
    ((ma & 0xfffn) << 8n) | ((ma & 0xfffff000n) << 32n) | (mi & 0xffn) | ((mi & 0xffffff00n) << 12n);
  return Number(dev);
}

export function pathOf(env: readonly string[]): string {
  const entry = [...env].reverse().find((kv) => kv.startsWith("PATH="));
  return entry === undefined ? "" : entry.slice("PATH=".length);
}

/**
 * Where execve should find COMMAND: a name with a '/' is taken as is (relative to `cwd`); a bare name is
 * looked up in each PATH entry in turn (an empty entry means `cwd`). Undefined when nowhere executable.
 */
export function resolveCommand(
  name: string,
  pathVar: string,
  cwd: string,
  isExecutable: (p: string) => boolean,
): string | undefined {
  if (name.includes("/")) {
    const p = posixPath.resolve(cwd, name);
    return isExecutable(p) ? p : undefined;
  }
  for (const dir of pathVar.split(":")) {
    const p = posixPath.resolve(cwd, dir === "" ? "." : dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}
