/**
 * The helper `unshare(1)` starts inside the new namespaces: `node inner.js SPEC_JSON`. It performs the
 * setup plan (plan.ts), finds COMMAND inside the new root and execs it, so COMMAND keeps this process's
 * PID (PID 1 with --pid).
 *
 * Invariants:
 * - Every module it needs is loaded before the pivot: after it, the host's files (dist/, node_modules/)
 *   are out of reach.
 * - Any failure prints one line `unionfs-ts: …` on stderr and exits EXIT_SETUP (125), EXIT_CANNOT_EXEC
 *   (126) or EXIT_NOT_FOUND (127); the namespace, and every mount made in it, dies with this process.
 * - It never touches process.stdout/stderr streams (that would make the descriptors non-blocking for
 *   COMMAND); it writes with fs.writeSync.
 * - If pivot_root is impossible (e.g. the host root is an initramfs), it falls back to chroot and says so.
 */
import * as fs from "node:fs";
import { MNT_DETACH, mknod, umount2 } from "../sys/libc";
import { chroot, execve, mount, pivotRoot, prepareExec, sethostname } from "../sys/ns";
import { attachConsole, grabTty } from "./console";
import { makeReadonly, maskPath } from "./harden";
import { describeStep, makedev, pathOf, resolveCommand, setupPlan, type Step } from "./plan";
import { EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, EXIT_SETUP, decodeSpec, type ContainerSpec } from "./spec";

const S_IFCHR = 0o020000;

class SetupFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function say(line: string): void {
  try {
    fs.writeSync(2, `unionfs-ts: ${line}\n`);
  } catch {
    // stderr closed: nothing to tell
  }
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? String(err);
}

function ensureDir(path: string): void {
  try {
    if (fs.statSync(path).isDirectory()) return;
  } catch {
    // missing: create it below
  }
  try {
    fs.mkdirSync(path, { mode: 0o755 });
  } catch (err) {
    throw new SetupFailure(
      `the root filesystem has no ${path} and it cannot be created (${codeOf(err)})`,
      EXIT_SETUP,
    );
  }
}

function pivot(root: string, spec: ContainerSpec): void {
  process.chdir(root);
  if (spec.noPivot) {
    say("pivot_root disabled (UNIONFS_TS_RUN_NO_PIVOT); using chroot: the host's mounts stay reachable");
  } else {
    try {
      pivotRoot(".", ".");
      umount2(".", MNT_DETACH);
      process.chdir("/");
      return;
    } catch (err) {
      if (codeOf(err) !== "EINVAL") throw err;
      say(`pivot_root is impossible here (${codeOf(err)}); using chroot: the host's mounts stay reachable`);
    }
  }
  chroot(".");
  process.chdir("/");
}

function perform(step: Step, spec: ContainerSpec): void {
  switch (step.op) {
    case "mount":
      mount(step.source, step.target, step.fstype, step.flags, step.data);
      return;
    case "ensureDir":
      ensureDir(step.path);
      return;
    case "mkdir":
      fs.mkdirSync(step.path);
      fs.chmodSync(step.path, step.mode);
      return;
    case "pivot":
      pivot(step.root, spec);
      return;
    case "mknod":
      mknod(step.path, S_IFCHR | step.mode, makedev(step.major, step.minor));
      fs.chmodSync(step.path, step.mode); // mknod applies the umask
      return;
    case "symlink":
      fs.symlinkSync(step.target, step.path);
      return;
    case "hostname":
      sethostname(step.name);
      return;
    case "readonly":
      makeReadonly(step.path);
      return;
    case "mask":
      maskPath(step.path);
      return;
    case "grabTty": {
      const tty = grabTty();
      if (spec.verbose) say(tty === undefined ? "no terminal on stdin/stdout/stderr" : `terminal: ${tty}`);
      return;
    }
    case "console":
      attachConsole(step.path);
      return;
  }
}

function isExecutable(p: string): boolean {
  try {
    if (!fs.statSync(p).isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

function tellReady(fd: number): void {
  if (fd < 0) return;
  let ns = "?";
  try {
    ns = fs.readlinkSync("/proc/self/ns/mnt");
  } catch {
    // keep "?"
  }
  try {
    fs.writeSync(fd, `ready ${ns}\n`);
    fs.closeSync(fd);
  } catch {
    // nobody listens
  }
}

function setUp(spec: ContainerSpec): string {
  for (const step of setupPlan(spec)) {
    if (spec.verbose) say(describeStep(step));
    try {
      perform(step, spec);
    } catch (err) {
      if (err instanceof SetupFailure) throw err;
      throw new SetupFailure(`container setup failed at '${describeStep(step)}': ${codeOf(err)}`, EXIT_SETUP);
    }
  }
  try {
    process.chdir(spec.workdir);
  } catch (err) {
    throw new SetupFailure(
      `cannot enter workdir '${spec.workdir}' inside the container (${codeOf(err)})`,
      EXIT_SETUP,
    );
  }
  const name = spec.argv[0] as string;
  const pathVar = pathOf(spec.env);
  const found = resolveCommand(name, pathVar, spec.workdir, isExecutable);
  if (found === undefined) {
    if (name.includes("/") && exists(name)) {
      throw new SetupFailure(`'${name}' inside the container is not an executable file`, EXIT_CANNOT_EXEC);
    }
    const where = name.includes("/") ? "" : ` (PATH=${pathVar})`;
    throw new SetupFailure(`command '${name}' not found inside the container${where}`, EXIT_NOT_FOUND);
  }
  return found;
}

function main(): number {
  let spec: ContainerSpec;
  try {
    spec = decodeSpec(process.argv[2]);
  } catch (err) {
    say(`bad container spec: ${(err as Error).message}`);
    return EXIT_SETUP;
  }
  let path: string;
  try {
    path = setUp(spec);
  } catch (err) {
    say(err instanceof Error ? err.message : String(err));
    return err instanceof SetupFailure ? err.exitCode : EXIT_SETUP;
  }
  tellReady(spec.readyFd);
  try {
    prepareExec();
    execve(path, spec.argv, spec.env);
  } catch (err) {
    const code = codeOf(err);
    const hint =
      code === "ENOENT" ? " (is its interpreter or dynamic loader missing from the root filesystem?)" : "";
    say(`cannot execute '${path}' inside the container: ${code}${hint}`);
    return code === "ENOENT" ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
  }
}

if (require.main === module) process.exitCode = main();
