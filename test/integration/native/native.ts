/**
 * Helpers for the fuse-native integration tests: skipping (with the reason printed) where the binding
 * cannot load, mounting through the CLI with --transport=fuse-native, and the fixture server of
 * serve-native.ts for cores changed on purpose.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { fuseNativeAvailable } from "../../../src/fuse/native/binding";
import { canonicalPath, forceUnmount, isMounted, mountsAt, waitFor } from "../../helpers/mounts";
import { runChild, type ChildOptions } from "../../helpers/syscalls";
import { EXIT_DEADLINE_MS, MOUNT_DEADLINE_MS, type Cleanup, type UnionMount } from "../../helpers/unionfs";

export const NATIVE_ARGS = ["--transport=fuse-native"] as const;

/** Skips the suite (printing why) when the fuse-native binding cannot load here. */
export function requireNative(ctx: Mocha.Context): void {
  const a = fuseNativeAvailable();
  if (!a.ok) {
    process.stdout.write(`      (skipped: ${a.why})\n`);
    ctx.skip();
  }
}

/** Prints a documented skip: something the binding cannot support. */
export function note(text: string): void {
  process.stdout.write(`      note: ${text}\n`);
}

/** Mounts BRANCHES on `mnt` through the CLI with the fuse-native transport (unmounted by `t`). */
export function mountNative(t: Cleanup, branches: string, mnt: string, verbose = false): Promise<UnionMount> {
  return t.union(branches, mnt, { extraArgs: NATIVE_ARGS, verbose });
}

/** Runs a shell command line (in `cwd`), asynchronously, so a hung daemon times the test out. */
export function sh(cmd: string, opts: ChildOptions = {}): ReturnType<typeof runChild> {
  return runChild("sh", ["-c", cmd], { timeoutMs: 30_000, ...opts });
}

function isFuseAt(mnt: string): boolean {
  return mountsAt(mnt).some((m) => m.fsType.startsWith("fuse"));
}

export interface Fixture {
  readonly child: ChildProcess;
  readonly mnt: string;
  stderr(): string;
  /** Unmounts, waits for the server to exit, SIGKILLs it if it does not. */
  stop(): Promise<void>;
}

/** Starts serve-native.js FACTORY UPPER LOWER MNT and returns once the mount answers. */
export async function startFixture(
  t: Cleanup,
  factory: string,
  upper: string,
  lower: string,
  mnt: string,
): Promise<Fixture> {
  const target = canonicalPath(mnt);
  const script = path.join(__dirname, "serve-native.js");
  const child = spawn(process.execPath, [script, factory, upper, lower, target], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let exited = false;
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (err += d));
  child.once("exit", () => (exited = true));
  const stop = async (): Promise<void> => {
    if (isMounted(target)) forceUnmount(target);
    try {
      await waitFor(() => exited, EXIT_DEADLINE_MS, "the fixture server to exit");
    } catch {
      child.kill("SIGKILL");
      await waitFor(() => exited, EXIT_DEADLINE_MS, "the fixture server to die");
    }
  };
  t.defer(`stop the fuse-native fixture at ${target}`, stop);
  await waitFor(
    () => exited || (out.includes("ready") && isFuseAt(target)),
    MOUNT_DEADLINE_MS,
    "the fixture",
  );
  if (exited) throw new Error(`serve-native exited before mounting: ${err.trim()}`);
  return { child, mnt: target, stderr: () => err, stop };
}
