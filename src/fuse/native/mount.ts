/**
 * Serving a union through fuse-native: mount, notice the end, unmount, abort.
 *
 * Invariants:
 * - `mountNative` resolves only after libfuse's INIT reached JS; on failure it rejects with nothing left
 *   mounted (a mount libfuse made before failing is aborted and detached) and the core destroyed.
 * - fuse-native's per-op timer is off (`timeout: false`): a slow op (a long copy-up) is never ETIMEDOUT.
 * - Every `_op_*` fuse-native would call goes to the NativeBridge; `_close` only releases the addon's hold
 *   on the event loop (fuse-native's own runs `fusermount -uz`, which could hit an unrelated mount).
 * - `done` resolves once libfuse has closed its /dev/fuse descriptor, i.e. its loop ended and no request
 *   can come any more (a lazily detached mount is served until its last file is closed); then the core is
 *   destroyed and nothing of the binding keeps the process alive.
 * - `abort()` is synchronous (crash handlers, process 'exit'): fusectl abort when possible, then a lazy
 *   detach. Every live mount is aborted this way if the process exits while it is still mounted
 *   (lifecycle.ts, shared with the kernel transport).
 * - Ops run on the JS thread, one at a time, each a synchronous core call: a long copy-up delays every
 *   other request of the mount meanwhile.
 */
import * as fs from "node:fs";
import { configOf, FS_TYPE, type MountRequest, type MountedFs } from "../transport";
import { errorText, FsError } from "../../errors";
import { createUnion } from "../../unionfs";
import { checkMountpoint } from "../../unionfs/branches";
import type { UnionConfig } from "../../unionfs/config";
import type { UnionOps } from "../../unionfs/types";
import { loadFuseNative } from "./binding";
import type { FuseBase, FuseBaseCtor, NativeAddon, RawHandler, Signal } from "./binding";
import { NativeBridge } from "./bridge";
import { abortConnection, detach, isMounted, mountsAt } from "../control";
import { track, unmountAt, untrack } from "../lifecycle";
import { fdConnection, fuseDeviceFds, stillServing } from "./control";
import { mountOptions } from "./encode";

const INIT_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
/** The addon copies the mountpoint into a 1024-byte buffer. */
const MAX_MOUNTPOINT_BYTES = 1023;

export function logLine(line: string): void {
  try {
    process.stderr.write(`unionfs-ts[fuse-native]: ${line}\n`);
  } catch {
    // stderr may be gone once the daemon is detached
  }
}

/**
 * fuse-native's class with every op routed to `bridge`, our option string, handlers that expose the
 * addon's per-thread locals to the bridge while they run, and a `_close` that does not unmount.
 */
/** The generic flags libfuse 2 passes on to the kernel mount (it refuses others). */
function nativeFlags(flags: readonly string[] = []): string[] {
  const known = new Set([
    "ro",
    "rw",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "noatime",
    "atime",
    "sync",
    "async",
    "dirsync",
  ]);
  return flags.filter((f) => known.has(f));
}

export function unionFuseClass(
  Base: FuseBaseCtor,
  addon: NativeAddon,
  bridge: NativeBridge,
  options: string,
): FuseBaseCtor {
  let released = false;
  class UnionFuse extends Base {
    override _fuseOptions(): string {
      return options;
    }

    override _makeHandlerArray(): RawHandler[] {
      return super._makeHandlerArray().map((h): RawHandler => (locals, op, ...args) => {
        bridge.locals = locals;
        try {
          return h(locals, op, ...args);
        } finally {
          bridge.locals = undefined;
        }
      });
    }

    override _close(cb: (err: Error | null) => void): void {
      try {
        if (!released && this._thread) {
          released = true;
          addon.fuse_native_unmount(this.mnt, this._thread);
        }
      } catch (err) {
        cb(err as Error);
        return;
      }
      cb(null);
    }
  }
  for (const name of bridge.names) {
    Object.defineProperty(UnionFuse.prototype, `_op_${name}`, {
      value(signal: Signal, ...args: unknown[]): void {
        bridge.dispatch(name, signal, args);
      },
    });
  }
  return UnionFuse;
}

export class NativeMount implements MountedFs {
  readonly done: Promise<void>;
  private stopped = false;
  private resolveDone!: () => void;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly mountpoint: string,
    /** "major:minor" of the mount. */
    readonly dev: string,
    private readonly fuse: FuseBase,
    private readonly core: UnionOps,
    /** libfuse's /dev/fuse descriptor(s) for this mount, with the connection each serves when known. */
    private readonly fds: ReadonlyArray<{ fd: number; conn: number | undefined }>,
  ) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.timer = setInterval(() => {
      if (!this.serving()) this.finish();
    }, POLL_MS);
    track(this, logLine);
  }

  /** Whether libfuse still holds its device descriptor (or, when it is unknown, the mount is there). */
  private serving(): boolean {
    if (this.fds.length > 0) return this.fds.some((f) => stillServing(f.fd, f.conn));
    return isMounted(this.mountpoint, this.dev);
  }

  private finish(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    untrack(this);
    this.fuse._close((err) => {
      if (err) logLine(`releasing the binding failed: ${err.message}`);
    });
    try {
      this.core.destroy();
    } catch (err) {
      logLine(`destroying the union failed: ${String(err)}`);
    }
    if (isMounted(this.mountpoint, this.dev) && !detach(this.mountpoint, this.dev)) {
      logLine(`could not detach the dead mount at ${this.mountpoint}`);
    }
    this.resolveDone();
  }

  async unmount(): Promise<void> {
    if (!this.stopped) await unmountAt(this.mountpoint, this.dev);
    await this.done;
  }

  /** Synchronous emergency stop: aborts the connection (pending requests fail) and detaches the mount. */
  abort(): void {
    if (this.stopped) return;
    abortConnection(this.dev);
    if (isMounted(this.mountpoint, this.dev)) detach(this.mountpoint, this.dev);
  }
}

function oneLineError(code: string, text: string): FsError {
  const err = new FsError(code);
  err.message = text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join("; ");
  return err;
}

function buildCore(req: MountRequest): UnionOps {
  if (req.factory === undefined) return createUnion(configOf(req));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(req.factory.module) as Record<string, (config: UnionConfig) => UnionOps>;
  const make = mod[req.factory.name];
  if (typeof make !== "function") {
    throw new FsError("EINVAL", `${req.factory.module} has no export ${req.factory.name}`);
  }
  return make(req.config);
}

function ours(mountpoint: string): string[] {
  return mountsAt(mountpoint)
    .filter((m) => m.fsType === FS_TYPE)
    .map((m) => m.dev);
}

/** Undoes whatever a failed mount left: a mount libfuse made, a device descriptor it leaked. */
function undoFailedMount(
  fuse: FuseBase,
  mountpoint: string,
  devsBefore: string[],
  fdsBefore: number[],
): void {
  for (const dev of ours(mountpoint).filter((d) => !devsBefore.includes(d))) {
    abortConnection(dev);
    detach(mountpoint, dev);
  }
  fuse._close(() => undefined);
  for (const fd of fuseDeviceFds().filter((f) => !fdsBefore.includes(f))) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed by libfuse
    }
  }
}

export async function mountNative(req: MountRequest): Promise<NativeMount> {
  const native = loadFuseNative();
  const mountpoint = checkMountpoint(req.mountpoint, undefined, MAX_MOUNTPOINT_BYTES);
  const core = buildCore(req);
  const bridge = new NativeBridge(core, {
    caller: { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0, pid: 0 },
    log: req.debug ? logLine : undefined,
    onUnknown: (err) => logLine(`error without an errno (answered EIO): ${errorText(err)}`),
  });
  const UnionFuse = unionFuseClass(
    native.Fuse,
    native.addon,
    bridge,
    mountOptions(req.fsname, nativeFlags(req.flags)),
  );
  const ops = Object.fromEntries(bridge.names.map((n) => [n, true]));
  const fuse = new UnionFuse(mountpoint, ops, { timeout: false });
  const devsBefore = ours(mountpoint);
  const fdsBefore = fuseDeviceFds();
  process.umask(0); // the kernel already applied the caller's umask to every mode it sends
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new FsError("ETIMEDOUT", `FUSE INIT took longer than ${INIT_TIMEOUT_MS} ms`)),
        INIT_TIMEOUT_MS,
      );
      fuse.mount((err) => (err ? reject(err) : resolve()));
    });
  } catch (err) {
    undoFailedMount(fuse, mountpoint, devsBefore, fdsBefore);
    try {
      core.destroy();
    } catch {
      // the mount failure is what matters
    }
    throw mountFailure(err, mountpoint);
  } finally {
    clearTimeout(timer);
  }
  let dev = ours(mountpoint).find((d) => !devsBefore.includes(d));
  if (dev === undefined) {
    dev = mountsAt(mountpoint).at(-1)?.dev ?? "";
    logLine(`mounted, but ${mountpoint} is not in the mount table as ${FS_TYPE}`);
  }
  const fds = fuseDeviceFds()
    .filter((fd) => !fdsBefore.includes(fd))
    .map((fd) => ({ fd, conn: fdConnection(fd) }));
  return new NativeMount(mountpoint, dev, fuse, core, fds);
}

function mountFailure(err: unknown, mountpoint: string): FsError {
  if (err instanceof FsError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // fuse-native says only "fuse failed"; libfuse wrote the reason on stderr already.
  return oneLineError(
    "EIO",
    `fuse-native could not mount ${mountpoint}: ${message}${/fuse failed/.test(message) ? " (libfuse's reason is above)" : ""}`,
  );
}
