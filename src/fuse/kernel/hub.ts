/**
 * Thread entry of a hub: one serving thread for many mounts (the shared server's, cli/shared), so that a
 * mount costs its own state and not a V8 isolate of its own (~8 MiB empty, ~15 MiB with the serving code).
 *
 * Invariants:
 * - One thread, synchronous calls only. It polls every mount's device (made non-blocking), the wake
 *   descriptors of their background copies while requests wait for one, and its own wake pipe; each
 *   round it serves every readable mount at most MAX_BURST requests, so a busy mount never starves the
 *   others. The request buffer and the READ buffer are the thread's (one request at a time); everything
 *   else is the mount's own: filesystem, Session, log, sync and invalidation threads.
 * - Orders (messages.ts HubOrder) come on the control port, read synchronously whenever the wake pipe
 *   polls readable. A mount is built at once on `add` ("built" or "failed" on its port), served from
 *   `open` with go, destroyed on `open` without. Its last message is always "ended". Building runs on
 *   this thread, so the other mounts wait for it: milliseconds for directories, seconds for a stack of
 *   tar archives that has no saved index yet.
 * - A failure escaping one mount's serving ends that mount only ("failed", then "ended" with code 1):
 *   the mounting thread aborts its connection and detaches it, the others go on. What no thread can
 *   contain ends every mount of this one: a thread-fatal error (process.exit, out of memory) ends the
 *   thread, and the mounting thread ends each of its mounts as it would a dead thread's; a system call
 *   that hangs (a dead network lower layer) holds up every mount of the thread.
 * - No poll blocks longer than POLL_MS, so the process can always stop the thread (and exit).
 * - A mount served here never uses io_uring (its Session does not ask for it): the shared server gives
 *   such mounts a thread of their own.
 */
import * as fs from "node:fs";
import { receiveMessageOnPort, parentPort, workerData, type MessagePort } from "node:worker_threads";
import { errorText } from "../../errors";
import type { UnionOps } from "../../unionfs/types";
import { tarModules } from "../../layer/tar/load";
import { pipe, pollReadable, readSome, setNonBlocking } from "../../sys/libc";
import { PolledSession } from "./loop";
import { logLine, openLog, STDERR_LOG, useLog, type LogSink } from "./log";
import type { HubListening, HubMessage, HubOrder, MountData } from "./messages";
import { READ_BUFFER_SIZE } from "./protocol";
import type { Session } from "./session";
import { build, destroyMount, failed, readyMessage, sessionOf, syncConsole } from "./serving";

/** Requests served from one mount before the next readable one gets its turn. */
const MAX_BURST = 16;
/**
 * The longest a poll blocks. A thread blocked in a system call cannot be stopped, and a process exits
 * only once its threads have (process.exit included): so a hub returns to JavaScript this often.
 */
const POLL_MS = 250;

interface Mount {
  id: number;
  data: MountData;
  port: MessagePort;
  log: LogSink;
  ops: UnionOps;
  session?: Session;
  polled?: PolledSession;
}

class Hub {
  private readonly mounts = new Map<number, Mount>();
  private readonly buf = Buffer.allocUnsafe(READ_BUFFER_SIZE);
  private readonly wakeBuf = Buffer.alloc(256);

  constructor(
    private readonly control: MessagePort,
    private readonly wake: number,
  ) {}

  run(): never {
    for (;;) {
      const fds = [this.wake];
      const owners: Array<Mount | undefined> = [undefined];
      for (const m of this.mounts.values())
        for (const fd of m.polled?.fds() ?? []) {
          fds.push(fd);
          owners.push(m);
        }
      const ready = pollReadable(fds, POLL_MS);
      if (ready[0] === true) this.takeOrders();
      const served = new Set<Mount>();
      owners.forEach((m, i) => {
        if (m === undefined || ready[i] !== true || served.has(m) || this.mounts.get(m.id) !== m) return;
        served.add(m);
        this.serve(m);
      });
    }
  }

  private takeOrders(): void {
    while (readWake(this.wake, this.wakeBuf)) {
      // the pipe is drained before the port is read: an order posted after this read wakes us again
    }
    for (
      let msg = receiveMessageOnPort(this.control);
      msg !== undefined;
      msg = receiveMessageOnPort(this.control)
    ) {
      const order = msg.message as HubOrder;
      if (order.type === "add") this.add(order.id, order.data, order.port);
      else this.open(order.id, order.go);
    }
  }

  private add(id: number, data: MountData, port: MessagePort): void {
    let log: LogSink = STDERR_LOG;
    try {
      if (data.logFile !== undefined) log = openLog(data.logFile);
      useLog(log);
      const ops = build(data);
      this.mounts.set(id, { id, data, port, log, ops });
      tell(port, { type: "built" });
    } catch (err) {
      tell(port, failed(err));
      this.ended(port, log, 0);
    }
  }

  private open(id: number, go: boolean): void {
    const m = this.mounts.get(id);
    if (m === undefined) return;
    useLog(m.log);
    if (!go) return this.end(m, 0);
    try {
      setNonBlocking(m.data.fd);
      const session = sessionOf(m.ops, m.data, true);
      m.session = session;
      let channel = "/dev/fuse";
      m.polled = new PolledSession(
        m.data.fd,
        session,
        {
          debug: m.data.debug,
          onTransport: (name) => (channel = name),
          onReady: () => tell(m.port, readyMessage(session, channel, m.data.debug)),
          onInitFailed: (errno) => tell(m.port, { type: "failed", message: `INIT refused (errno ${errno})` }),
        },
        this.buf,
      );
    } catch (err) {
      this.fail(m, err);
    }
  }

  private serve(m: Mount): void {
    useLog(m.log);
    try {
      if (m.polled?.serveReady(MAX_BURST) === "gone") {
        if (m.data.debug)
          logLine(
            `session ended; ${m.session?.table.size ?? 0} node(s) still known (root included)`,
            "debug",
          );
        this.end(m, 0);
      }
    } catch (err) {
      this.fail(m, err);
    }
  }

  private fail(m: Mount, err: unknown): void {
    logLine(`serving stopped by an error: ${errorText(err)}`, "error");
    tell(m.port, failed(err));
    this.end(m, 1);
  }

  /** Forgets `m` (its device leaves the poll set before the mounting thread closes it) and ends it. */
  private end(m: Mount, code: number): void {
    this.mounts.delete(m.id);
    try {
      m.polled?.close();
    } catch (err) {
      logLine(`closing the session: ${errorText(err)}`, "warning");
    }
    destroyMount(m.session ?? m.ops);
    this.ended(m.port, m.log, code);
  }

  private ended(port: MessagePort, log: LogSink, code: number): void {
    tell(port, { type: "ended", code });
    port.close();
    useLog(STDERR_LOG);
    if (log.fd !== STDERR_LOG.fd) fs.closeSync(log.fd);
  }
}

function tell(port: MessagePort, msg: HubMessage): void {
  port.postMessage(msg);
}

/** Reads what the wake pipe holds (non-blocking); false once it is empty. */
function readWake(fd: number, buf: Buffer): boolean {
  try {
    return readSome(fd, buf) === buf.length; // undefined: empty
  } catch {
    return false;
  }
}

function main(): void {
  syncConsole();
  const { control } = workerData as { control: MessagePort };
  // What the first mount needs, loaded before this hub says it polls (its process waits for that before
  // it may exit: see link.ts).
  /* eslint-disable @typescript-eslint/no-require-imports */
  require("../../unionfs/index");
  /* eslint-enable @typescript-eslint/no-require-imports */
  tarModules();
  const [wakeRead, wakeWrite] = pipe();
  setNonBlocking(wakeWrite); // a hub that does not read never blocks the mounting thread
  parentPort?.postMessage({ type: "listening", wakeFd: wakeWrite, readFd: wakeRead } satisfies HubListening);
  new Hub(control, wakeRead).run();
}

main();
