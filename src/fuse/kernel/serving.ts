/**
 * What a serving thread does for each mount it serves, whether it serves one (worker.ts) or several
 * (hub.ts): build the filesystem, make its Session, say what INIT settled.
 *
 * Invariants: the filesystem is built here, in the serving thread, never in the mounting thread
 * (`createUnion(config)`, or the factory export when `factory` is set: a test seam), and synchronously,
 * so a thread serving several mounts builds one without letting go of the others for longer than that.
 */
import * as fs from "node:fs";
import { format } from "node:util";
import type { UnionConfig } from "../../unionfs/config";
import type { UnionOps } from "../../unionfs/types";
import { codeOf, errorText } from "../../errors";
import { describeFlags } from "./init";
import { logAt, logLine } from "./log";
import type { MountData, WorkerMessage } from "./messages";
import { Session } from "./session";
import { ringUnusable } from "./ring";

/** Whether this thread can make an io_uring for FUSE; says why not (the mount then serves /dev/fuse). */
function ringUsable(): boolean {
  const why = ringUnusable();
  if (why !== undefined)
    logLine(`io_uring asked for, but no io_uring can be set up here (${why}); serving /dev/fuse`, "warning");
  return why === undefined;
}

/** console.* as synchronous writes to fd 1/2: a busy serving thread never flushes asynchronous stdio. */
export function syncConsole(): void {
  const to =
    (fd: number) =>
    (...args: unknown[]): void => {
      try {
        fs.writeSync(fd, `${format(...args)}\n`);
      } catch {
        // the stream is gone
      }
    };
  console.log = console.info = console.debug = to(1);
  console.error = console.warn = console.trace = to(2);
}

/* eslint-disable @typescript-eslint/no-require-imports -- loaded on first use, not with this module */
export function build(data: MountData): UnionOps {
  if (data.factory === undefined) {
    const core = require("../../unionfs/index") as typeof import("../../unionfs/index");
    return core.createUnion(data.config);
  }
  const mod = require(data.factory.module) as Record<string, unknown>;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const make = mod[data.factory.name];
  if (typeof make !== "function") {
    throw new Error(`factory ${data.factory.name} is not a function in ${data.factory.module}`);
  }
  return (make as (c: UnionConfig) => UnionOps)(data.config);
}

export function failed(err: unknown): WorkerMessage {
  return { type: "failed", message: err instanceof Error ? err.message : String(err), code: codeOf(err) };
}

/** The session of a mount; `polled`: served among others (hub.ts), so never over io_uring. */
export function sessionOf(ops: UnionOps, data: MountData, polled = false): Session {
  return new Session(ops, {
    devFd: data.fd,
    passthrough: data.config.passthrough !== "off",
    splice: process.env.UNIONFS_TS_SPLICE !== "0",
    ioThreads: process.env.UNIONFS_TS_IO_THREADS !== "0",
    uring: !polled && data.config.ioUring === true && ringUsable(),
    entryTimeout: data.config.cacheTimeout,
    attrTimeout: data.config.cacheTimeout,
    log: logAt("warning"),
  });
}

/** The "ready" message once INIT is answered (logged too, with a debug log). */
export function readyMessage(session: Session, channel: string, debug: boolean): WorkerMessage {
  const neg = session.neg;
  const ready = { minor: neg?.minor ?? 0, flags: describeFlags(neg?.flags ?? 0, neg?.flags2 ?? 0), channel };
  if (debug)
    logLine(`INIT: protocol 7.${ready.minor}, flags ${ready.flags}; requests over ${channel}`, "debug");
  return { type: "ready", ...ready };
}

/**
 * Ends a mount's filesystem: through its Session once it has one (`ops.destroy()` runs once), else the
 * filesystem itself; a failure is logged, not thrown.
 */
export function destroyMount(it: Session | UnionOps): void {
  try {
    it.destroy();
  } catch (err) {
    logLine(`destroy failed: ${errorText(err)}`, "error");
  }
}
