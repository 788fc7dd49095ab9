/**
 * The shared serving process: mounts what the mount commands of this (uid, mount namespace) ask for,
 * all served by one thread (fuse/kernel/hub.ts; an io_uring mount on a thread of its own), and exits
 * when it serves nothing.
 *
 * Invariants:
 * - A request is checked and mounted exactly as `unionfs-ts mount` does it, relative paths resolved
 *   against the caller's cwd; the caller gets "done" with status 0 only once the mount answers (INIT),
 *   otherwise with the one error line the command would have printed, and nothing is left mounted.
 * - A mount the kernel transport cannot serve (no root, or --transport=fuse-native) is answered
 *   "fallback": the command serves it in a daemon of its own.
 * - A mount whose serving fails ends alone (its connection aborted, the mount detached, by
 *   KernelMount); the serving thread dying ends every mount it served the same way, never leaving one
 *   hanging; this process goes on while it serves a mount (the next one gets a new thread).
 * - The process exits once no request is pending and no mount is served (so it never outlives its
 *   last mount); SIGINT, SIGTERM and SIGHUP unmount every mount (lazily when busy), which ends it.
 * - Logs: a mount's log=FILE gets its serving thread's lines and its "serving"/"unmounted" lines; the
 *   process's own stdio is /dev/null.
 */
import type * as net from "node:net";
import * as fs from "node:fs";
import { abortAllMounts, chooseTransport, kernelTransport, type KernelMount } from "../../fuse";
import { logLine, logLineTo } from "../../fuse/kernel/log";
import { hubSettled } from "../../fuse/kernel/link";
import { mountRequestOf, validateMount } from "../mount";
import { errorReport } from "../report";
import { writePidFile } from "../serve";
import type { Listening } from "./listen";
import { readMessages, send, type MountAnswer, type MountAsk } from "./protocol";

export class SharedServer {
  private pending = 0;
  private readonly mounts = new Set<KernelMount>();
  private exiting = false;
  /** A signal asked to unmount everything: a mount that was still being set up goes too, once up. */
  private stopping = false;

  constructor(private readonly listening: Listening) {}

  start(): void {
    this.listening.server.on("connection", (sock) => this.onConnection(sock));
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => this.unmountAll());
    process.on("uncaughtException", (err) => {
      logLine(`shared server: fatal: ${err.stack ?? String(err)}`, "error");
      abortAllMounts();
      this.listening.release();
      process.exit(1);
    });
  }

  private onConnection(sock: net.Socket): void {
    sock.on("error", () => undefined); // a caller that went away; its mount goes on
    let asked = false;
    readMessages<MountAsk>(sock, (msg) => {
      if (asked || msg.type !== "mount" || this.exiting) {
        sock.destroy();
        return;
      }
      asked = true;
      this.pending++;
      send(sock, { type: "accepted" });
      // Pending until the answer is out and the caller closed: exiting sooner could lose the answer.
      sock.once("close", () => {
        this.pending--;
        this.exitIfIdle();
      });
      void this.mount(msg).then((answer) => sock.end(`${JSON.stringify(answer)}\n`));
    });
  }

  private async mount(ask: MountAsk): Promise<MountAnswer> {
    let stderr = "";
    try {
      const m = validateMount(ask.positionals, ask.options, ask.cwd);
      const { transport, reason } = chooseTransport(ask.transport ?? "auto");
      if (transport.name !== kernelTransport.name) return { type: "fallback", reason };
      for (const w of m.warnings) stderr += `unionfs-ts: warning: ${w}\n`;
      const km = await kernelTransport.mount({
        ...mountRequestOf(m),
        ...(ask.factory === undefined ? {} : { factory: ask.factory }),
        sharedThread: true,
      });
      const serving = `serving ${km.mountpoint} (transport: kernel, ${reason}, shared) as pid ${process.pid}`;
      if (m.logFile !== undefined) logLineTo(m.logFile, serving, "info");
      else if (ask.verbose) stderr += `unionfs-ts: ${serving}\n`;
      if (m.pidFile !== undefined) writePidFile(m.pidFile);
      this.serve(km, m.logFile, m.pidFile);
      return { type: "done", status: 0, stderr };
    } catch (err) {
      const r = errorReport(err, ask.verbose);
      return { type: "done", status: r.status, stderr: stderr + r.text };
    }
  }

  private serve(km: KernelMount, logFile?: string, pidFile?: string): void {
    this.mounts.add(km);
    if (this.stopping) km.unmount().catch(() => km.abort());
    void km.done.then(() => {
      this.mounts.delete(km);
      if (pidFile !== undefined) fs.rmSync(pidFile, { force: true });
      if (logFile !== undefined) {
        const why = km.error === undefined ? "" : ` (${String(km.error)})`;
        logLineTo(logFile, `${km.mountpoint} is unmounted${why}`, "info");
      }
      this.exitIfIdle();
    });
  }

  private unmountAll(): void {
    this.stopping = true;
    for (const km of this.mounts) km.unmount().catch(() => km.abort());
  }

  /** With nothing left to serve: no new requests (a caller starts a new server), then exit. */
  private exitIfIdle(): void {
    if (this.pending > 0 || this.mounts.size > 0 || this.exiting) return;
    this.exiting = true;
    this.listening.release();
    void hubSettled().then(() => process.exit(0));
  }
}
