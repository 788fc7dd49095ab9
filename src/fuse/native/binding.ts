/**
 * Loading the optional `fuse-native` binding (libfuse 2 high-level API), and the part of its shape this
 * transport relies on.
 *
 * Invariants:
 * - Nothing here runs before a fuse-native mount (or an `auto` choice) asks for it, so the kernel
 *   transport works on a machine without the binding or without libfuse2.
 * - A binding that cannot load becomes one FsError (code ENOPKG) whose message is a single line saying
 *   how to get it; the outcome is cached.
 * - Besides fuse-native's public class, this uses its private `_op_*` / `_makeHandlerArray` / `_close`
 *   layer and the addon's `fuse_native_unmount` (see mount.ts, bridge.ts): fuse-native 2.2.6 is the last
 *   release and the dependency is pinned to ^2.2.6.
 *
 * Test seam: UNIONFS_TS_FUSE_NATIVE_PATH names another module to load instead of "fuse-native".
 */
import { createRequire } from "node:module";
import * as path from "node:path";
import { FsError } from "../../errors";

/** What a raw op handler answers with: a result (0, a count, or a negative errno) and op-specific values. */
export type Signal = (res: number, ...values: unknown[]) => void;

/** One entry of the handler array the addon calls: (per-thread locals buffer, op code, ...op arguments). */
export type RawHandler = (locals: Buffer, op: number, ...args: unknown[]) => unknown;

/** The members of fuse-native's `Fuse` class (a Nanoresource) that this transport uses or overrides. */
export interface FuseBase {
  readonly mnt: string;
  /** Per-op JS timeout in ms; 0 when disabled with `{ timeout: false }`. */
  readonly timeout: number;
  /** The addon's fuse_thread_t, allocated when mounting starts. */
  _thread: Buffer | null;
  mount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
  _makeHandlerArray(): RawHandler[];
  _close(cb: (err: Error | null) => void): void;
}

export interface FuseOptions {
  /** `false` switches fuse-native's per-op timer (default 15 s, then ETIMEDOUT) off. */
  timeout: false;
}

export type FuseBaseCtor = new (mnt: string, ops: Record<string, unknown>, opts: FuseOptions) => FuseBase;

/** The compiled addon behind the class. */
export interface NativeAddon {
  /** Drops the addon's hold on the event loop (it does not unmount anything). */
  fuse_native_unmount(mnt: string, thread: Buffer): void;
}

export interface FuseNative {
  Fuse: FuseBaseCtor;
  addon: NativeAddon;
  /** Where the package was loaded from. */
  dir: string;
}

export const INSTALL_HINT =
  "install libfuse2 (apt-get install libfuse2) and fuse-native (npm install fuse-native)";

let cached: { ok: FuseNative } | { err: FsError } | undefined;
const nodeRequire = createRequire(__filename);

function moduleName(): string {
  return process.env.UNIONFS_TS_FUSE_NATIVE_PATH || "fuse-native";
}

/** Why loading failed, in a few words. */
export function describeLoadError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === "string" ? e.message : String(err);
  if (e?.code === "MODULE_NOT_FOUND" && message.includes(moduleName()))
    return "the optional package fuse-native is not installed";
  const lib = /(lib[\w.+-]*\.so[\w.]*): cannot open shared object file/.exec(message);
  if (lib) return `${lib[1]} is missing`;
  return message.split("\n")[0] ?? "unknown error";
}

/** The one-line error for an unavailable binding. */
export function unavailableError(err: unknown): FsError {
  const e = new FsError("ENOPKG");
  e.message = `the fuse-native transport is unavailable (${describeLoadError(err)}): ${INSTALL_HINT}`;
  return e;
}

/** Loads fuse-native and its addon, or throws the one-line ENOPKG error. */
export function loadFuseNative(): FuseNative {
  if (cached === undefined) {
    try {
      const name = moduleName();
      const entry = nodeRequire.resolve(name);
      const Fuse = nodeRequire(entry) as FuseBaseCtor;
      // The addon was loaded by fuse-native through node-gyp-build; loading it again the same way returns
      // the same (cached) module.
      const fromPkg = createRequire(entry);
      const dir = path.dirname(fromPkg.resolve("./package.json"));
      const gypBuild = fromPkg("node-gyp-build") as (dir: string) => NativeAddon;
      const addon = gypBuild(dir);
      if (typeof Fuse !== "function" || typeof addon.fuse_native_unmount !== "function") {
        throw new Error(`${name} does not look like fuse-native 2.x`);
      }
      cached = { ok: { Fuse, addon, dir } };
    } catch (err) {
      cached = { err: unavailableError(err) };
    }
  }
  if ("err" in cached) throw cached.err;
  return cached.ok;
}

/** Whether the binding loads, without throwing. */
export function fuseNativeAvailable(): { ok: true } | { ok: false; why: string } {
  try {
    loadFuseNative();
    return { ok: true };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}
