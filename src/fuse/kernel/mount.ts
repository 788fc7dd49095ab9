/**
 * Mounting thread side: open /dev/fuse, mount(8) it, have it served (link.ts), unmount, abort.
 *
 * Invariants:
 * - `mountKernel` resolves only after INIT was answered; on any failure it rejects with nothing left
 *   mounted, its serving side done with it (a thread of its own, or the process's hub: link.ts) and
 *   the device closed.
 * - The filesystem is built (in the serving thread) before anything is mounted, so a bad config mounts
 *   nothing.
 * - The main thread owns the device fd and closes it once its serving side let go of it (`end`);
 *   closing the last fd of a connection aborts it, so a crashed thread never leaves a wedged mount,
 *   and the dead mount is detached as well.
 * - `abort()` is synchronous (crash handlers, process 'exit'): fusectl abort, then lazy detach. Every live
 *   mount is aborted this way if the process exits while it is still mounted (lifecycle.ts).
 */
import * as fs from "node:fs";
import { configOf, FS_TYPE, type MountRequest, type MountedFs } from "../transport";
import { errorText, FsError } from "../../errors";
import { checkMountpoint } from "../../unionfs/branches";
import { abortConnection, detach, isMounted, mountsAt, type MountRow } from "../control";
import { track, unmountAt, untrack } from "../lifecycle";
import type { WorkerMessage } from "./messages";
import { ownThread, sharedThread, type Connect, type MountData, type ServingLink } from "./link";
import { logAt, logLine } from "./log";
import { MAX_PAGES } from "./protocol";
import { runMount } from "./mount-command";

const INIT_TIMEOUT_MS = 30_000;

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // a failure nobody waits for is not an unhandled rejection
  return { promise, resolve, reject };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_res, rej) => {
    timer = setTimeout(() => rej(new FsError("ETIMEDOUT", `${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function ourRow(mountpoint: string): MountRow | undefined {
  return mountsAt(mountpoint)
    .filter((m) => m.fsType === FS_TYPE)
    .at(-1);
}

/**
 * Lets the kernel read ahead (and so send READ requests of) up to MAX_PAGES (~1 MiB) instead of 128 KiB: a third of
 * the daemon CPU per byte read. The kernel sets the mount's readahead while it handles the INIT reply,
 * so this runs after it. Best effort: without sysfs the default stays.
 */
const READAHEAD_KB = (MAX_PAGES * 4096) / 1024;
function raiseReadahead(dev: string): void {
  if (dev === "") return;
  try {
    fs.writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(READAHEAD_KB));
  } catch {
    // no sysfs or not allowed: keep the default
  }
}

export class KernelMount implements MountedFs {
  readonly done: Promise<void>;
  /** Why serving stopped, when it was not a clean unmount. */
  error: unknown = undefined;
  /** "major:minor" of the mount, known once mounted. */
  dev = "";
  /** What INIT settled: protocol minor version and granted flags ("ASYNC_READ|…"). */
  negotiated: { minor: number; flags: string } | undefined = undefined;
  /** How requests reach the daemon: "/dev/fuse" or "io_uring (…)", known once ready. */
  channel: string | undefined = undefined;
  private stopped = false;
  private readonly built = deferred<void>();
  private readonly ready = deferred<void>();
  private readonly link: ServingLink;

  constructor(
    readonly mountpoint: string,
    private readonly fd: number,
    data: Omit<MountData, "fd">,
    connect: Connect = ownThread,
  ) {
    const exited = deferred<void>();
    this.done = exited.promise;
    this.link = connect(
      { ...data, fd },
      {
        message: (msg) => this.onMessage(msg),
        error: (err) => {
          this.error ??= err;
          logLine(`serving thread failed: ${errorText(err)}`, "error");
        },
        end: (code) => {
          this.onExit(code);
          exited.resolve();
        },
      },
    );
  }

  private onMessage(msg: WorkerMessage): void {
    if (msg.type === "preloaded" || msg.type === "queues") return;
    if (msg.type === "built") this.built.resolve();
    else if (msg.type === "ready") {
      this.negotiated = { minor: msg.minor, flags: msg.flags };
      this.channel = msg.channel;
      this.ready.resolve();
    } else {
      const err = new FsError(msg.code ?? "EIO");
      err.message = msg.message;
      this.error ??= err;
      this.built.reject(err);
      this.ready.reject(err);
    }
  }

  private onExit(code: number): void {
    this.stopped = true;
    untrack(this);
    const err =
      this.error ?? new FsError("EIO", `serving thread exited (code ${code}) before the mount was ready`);
    this.built.reject(err);
    this.ready.reject(err);
    if (code !== 0) this.error ??= new FsError("EIO", `serving thread exited with code ${code}`);
    try {
      fs.closeSync(this.fd); // the last fd of the connection: closing it aborts the connection
    } catch (err) {
      logLine(`closing /dev/fuse: ${String(err)}`, "warning");
    }
    if (this.dev !== "" && isMounted(this.mountpoint, this.dev) && !detach(this.mountpoint, this.dev)) {
      logLine(`could not detach the dead mount at ${this.mountpoint}`, "error");
    }
  }

  /**
   * Mount while the serving thread is still being built (mount(8) and the thread's start overlap), then
   * serve; on failure everything is undone before this rejects, a mount made meanwhile included.
   */
  async start(fsname: string, flags: readonly string[] = []): Promise<void> {
    const mounted = runMount(this.fd, fsname, this.mountpoint, flags).then(
      () => undefined,
      (err: unknown) => err ?? new FsError("EIO", "mount failed"),
    );
    const buildError = await this.built.promise.then(
      () => undefined,
      (err: unknown) => err ?? new FsError("EIO", "the serving thread failed"),
    );
    const mountError = await mounted;
    if (mountError === undefined) this.dev = ourRow(this.mountpoint)?.dev ?? "";
    if (buildError !== undefined || mountError !== undefined) {
      if (buildError === undefined) this.link.open(false);
      if (mountError === undefined && this.dev !== "" && isMounted(this.mountpoint, this.dev)) {
        detach(this.mountpoint, this.dev); // nobody will ever serve it
      }
      await this.done;
      throw buildError ?? mountError;
    }
    if (this.dev === "")
      logLine(`mounted, but ${this.mountpoint} is not in the mount table: no crash cleanup`, "warning");
    track(this, logAt("error"));
    process.umask(0); // the kernel already applied the caller's umask to every mode it sends
    this.link.open(true);
    try {
      await withTimeout(this.ready.promise, INIT_TIMEOUT_MS, "FUSE INIT");
    } catch (err) {
      this.abort();
      await this.done;
      throw err;
    }
    raiseReadahead(this.dev);
  }

  async unmount(): Promise<void> {
    if (!this.stopped) await unmountAt(this.mountpoint, this.dev);
    await this.done;
  }

  /** Synchronous emergency stop: aborts the connection (pending requests fail) and detaches the mount. */
  abort(): void {
    if (this.dev === "") {
      if (!this.stopped) this.link.open(false);
      return;
    }
    if (!this.stopped) abortConnection(this.dev);
    if (isMounted(this.mountpoint, this.dev)) detach(this.mountpoint, this.dev);
  }
}

export async function mountKernel(req: MountRequest): Promise<KernelMount> {
  const mountpoint = checkMountpoint(req.mountpoint);
  const fd = fs.openSync("/dev/fuse", "r+");
  const config = configOf(req);
  // A mount over io_uring needs a thread of its own: its queues are served by blocking on the ring.
  const connect = req.sharedThread === true && config.ioUring !== true ? sharedThread : ownThread;
  let m: KernelMount;
  try {
    m = new KernelMount(
      mountpoint,
      fd,
      {
        config,
        factory: req.factory,
        debug: req.debug ?? false,
        ...(req.logFile === undefined ? {} : { logFile: req.logFile }),
      },
      connect,
    );
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  await m.start(req.fsname, req.flags);
  return m;
}
