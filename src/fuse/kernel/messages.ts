/**
 * What the mounting thread and the serving worker tell each other.
 *
 * Invariants: everything here is structured-clone data. The worker reports "built" once the filesystem
 * exists, then blocks on `gate` until the main thread stores GO (the mount exists) or STOP (no mount: it
 * destroys the filesystem and exits). "ready" follows once INIT is answered; "failed" is sent before
 * the worker gives up.
 */
import type { MessagePort } from "node:worker_threads";
import type { UnionConfig } from "../../unionfs/config";
import type { QueueWorkerData } from "./queue-worker";

export interface WorkerData {
  /** The /dev/fuse descriptor (owned and closed by the main thread). */
  fd: number;
  config: UnionConfig;
  factory?: { module: string; name: string };
  debug: boolean;
  /** Where the serving thread logs (see log.ts); stderr when absent. */
  logFile?: string;
  /** Int32Array over a SharedArrayBuffer of 4 bytes: GATE_WAIT, GATE_GO or GATE_STOP. */
  gate: SharedArrayBuffer;
}

/** What a mount's filesystem and session are made from, whichever thread serves it. */
export type MountData = Omit<WorkerData, "gate">;

export const GATE_WAIT = 0;
export const GATE_GO = 1;
export const GATE_STOP = 2;

/** "failed" carries the error's errno `code` when it had one. */
export type WorkerMessage =
  | { type: "built" }
  | { type: "ready"; minor: number; flags: string; channel: string }
  | { type: "failed"; message: string; code?: string }
  /** A prestarted thread has loaded the serving code (prestart.ts); nothing to act on. */
  | { type: "preloaded" }
  /** Start these io_uring queue threads (queue-threads.ts), one per CPU, on the mounting thread. */
  | { type: "queues"; threads: QueueWorkerData[] };

/**
 * What the mounting thread orders a hub (hub.ts, a thread serving several mounts) on its control port:
 * `add` a mount (its messages then come on `port`), and `open` it once mount(2) settled (`go`: serve
 * it; otherwise destroy it). Each order is followed by a byte on the hub's wake pipe.
 */
export type HubOrder =
  { type: "add"; id: number; data: MountData; port: MessagePort } | { type: "open"; id: number; go: boolean };

/** What a hub says of one mount on that mount's port: as a thread of its own would, then "ended". */
export type HubMessage = WorkerMessage | { type: "ended"; code: number };

/** What a hub says on its own port once it polls: where to write to wake it up (and the pipe's other end). */
export interface HubListening {
  type: "listening";
  wakeFd: number;
  readFd: number;
}
