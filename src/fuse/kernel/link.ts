/**
 * The mounting thread's link to whatever serves one mount: a thread of its own (worker.ts), or a hub
 * shared with other mounts of this process (hub.ts). KernelMount sees the same events either way: the
 * thread's messages, then one `end` with an exit code (0: the session ended; otherwise it failed).
 *
 * Invariants:
 * - `end` comes once per mount, after the serving side let go of the device: the mounting thread may
 *   close it then. A hub that dies ends every mount it served, each with the hub's exit code (1 if 0).
 * - A thread of its own that serves io_uring asks this thread to start its queue threads ("queues"), and
 *   they are told to stop when it ends, whatever way it ended.
 * - One hub per process at a time, started by the first mount that asks for one, unref'd while it
 *   serves nothing (it never keeps a process alive by itself); a dead hub is replaced by the next mount.
 */
import * as path from "node:path";
import * as fs from "node:fs";
import { MessageChannel, Worker, type MessagePort } from "node:worker_threads";
import { GATE_GO, GATE_STOP } from "./messages";
import type { HubListening, HubMessage, HubOrder, MountData, WorkerData, WorkerMessage } from "./messages";
import { WORKER_FILE, WORKER_LIMITS, takePrestarted } from "./prestart";
import { spawnQueueWorkers, type QueueWorkers } from "./queue-threads";

export interface LinkEvents {
  message(msg: WorkerMessage): void;
  error(err: unknown): void;
  end(code: number): void;
}

export interface ServingLink {
  /** mount(2) settled: serve the mount (`go`), or destroy its filesystem (it will never be mounted). */
  open(go: boolean): void;
}

export type { MountData };
export type Connect = (data: MountData, ev: LinkEvents) => ServingLink;

/** A thread of its own (a prestarted one when there is one), which waits on a gate until `open`. */
export const ownThread: Connect = (data, ev) => {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const full: WorkerData = { ...data, gate: gate.buffer as SharedArrayBuffer };
  const prestarted = takePrestarted();
  prestarted?.postMessage({ type: "start", data: full });
  const worker = prestarted ?? new Worker(WORKER_FILE, { workerData: full, resourceLimits: WORKER_LIMITS });
  // The io_uring queue threads are this thread's, not the serving thread's: a serving thread that dies
  // would otherwise wait forever for its threads, blocked in the kernel, and the mount would hang.
  let queues: QueueWorkers | undefined;
  worker.on("message", (msg: WorkerMessage) => {
    if (msg.type === "queues") queues = spawnQueueWorkers(msg.threads);
    else ev.message(msg);
  });
  worker.on("error", (err) => ev.error(err));
  worker.on("exit", (code) => {
    queues?.stop();
    ev.end(code);
  });
  return {
    open(go) {
      Atomics.store(gate, 0, go ? GATE_GO : GATE_STOP);
      Atomics.notify(gate, 0);
    },
  };
};

const HUB_FILE = path.join(__dirname, "hub.js");

class HubThread {
  private readonly worker: Worker;
  private readonly control: MessagePort;
  private pipe: HubListening | undefined;
  /** Each mount's events and the port its messages come on. */
  private readonly served = new Map<number, { ev: LinkEvents; port: MessagePort }>();
  private nextId = 1;
  dead = false;
  /** Resolves once the hub polls (its native code loaded) or is gone: the process may exit then. */
  readonly settled: Promise<void>;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.control = port1;
    this.worker = new Worker(HUB_FILE, {
      workerData: { control: port2 },
      transferList: [port2],
      resourceLimits: WORKER_LIMITS,
    });
    this.worker.unref();
    this.settled = new Promise((resolve) => {
      this.worker.once("message", () => resolve());
      this.worker.once("exit", () => resolve());
    });
    this.worker.on("message", (msg: HubListening) => {
      this.pipe = msg;
      this.wake(); // orders posted before we knew where to wake it
    });
    this.worker.on("error", (err) => {
      for (const { ev } of this.served.values()) ev.error(err);
    });
    this.worker.on("exit", (code) => {
      this.dead = true;
      if (this.pipe !== undefined) for (const fd of [this.pipe.wakeFd, this.pipe.readFd]) fs.closeSync(fd);
      const ended = [...this.served.values()];
      this.served.clear();
      for (const { ev, port } of ended) {
        port.close(); // an open port would keep the process alive
        ev.end(code === 0 ? 1 : code);
      }
    });
  }

  attach(data: MountData, ev: LinkEvents): ServingLink {
    const id = this.nextId++;
    const { port1, port2 } = new MessageChannel();
    this.served.set(id, { ev, port: port1 });
    this.worker.ref();
    port1.on("message", (msg: HubMessage) => {
      if (msg.type !== "ended") return ev.message(msg);
      port1.close();
      if (this.served.delete(id)) ev.end(msg.code);
      if (this.served.size === 0) this.worker.unref();
    });
    this.order({ type: "add", id, data, port: port2 }, [port2]);
    return { open: (go) => this.order({ type: "open", id, go }) };
  }

  private order(o: HubOrder, transfer: MessagePort[] = []): void {
    this.control.postMessage(o, transfer);
    this.wake();
  }

  private wake(): void {
    if (this.pipe === undefined || this.dead) return;
    try {
      fs.writeSync(this.pipe.wakeFd, "!");
    } catch {
      // the pipe is full (the hub has plenty to read already) or gone with the hub
    }
  }
}

let hub: HubThread | undefined;

function liveHub(): HubThread {
  if (hub === undefined || hub.dead) hub = new HubThread();
  return hub;
}

/** Served by this process's hub, with its other mounts. */
export const sharedThread: Connect = (data, ev) => liveHub().attach(data, ev);

/**
 * Starts this process's hub ahead of its first mount (a process that will serve several); the process
 * must not exit before `hubSettled()` resolves (Node aborts a process that stops a thread loading
 * native code).
 */
export function startHub(): void {
  liveHub();
}

export function hubSettled(): Promise<void> {
  return hub?.settled ?? Promise.resolve();
}
