/**
 * What the mount command and the shared server say to each other over the socket: one JSON object per
 * line. The command sends one `MountAsk`; the server answers `accepted` as soon as it has taken the
 * request (before that, a closed connection means the server was on its way out: ask again), then
 * exactly one `MountAnswer`, and closes.
 *
 * Invariants: structured data only, no paths resolved here; loads nothing but node:net.
 */
import type * as net from "node:net";
import type { SharedMountArgs } from "./detect";

export interface MountAsk extends SharedMountArgs {
  type: "mount";
  /** The caller's working directory: relative paths of the command line are resolved against it. */
  cwd: string;
  /** Test seam (UNIONFS_TS_TEST_FACTORY=MODULE#EXPORT): build the union from this export instead. */
  factory?: { module: string; name: string };
}

export type MountAnswer =
  | { type: "accepted" }
  /** `stderr` is what the command prints, as the daemon-per-mount command would; then it exits `status`. */
  | { type: "done"; status: number; stderr: string }
  /** The shared server cannot serve this mount (another transport): the command serves it itself. */
  | { type: "fallback"; reason: string };

/** Calls `onMessage` with each complete line of `socket`, parsed; a line that is not JSON ends it. */
export function readMessages<T>(socket: net.Socket, onMessage: (msg: T) => void): void {
  let buf = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.length === 0) continue;
      let msg: T;
      try {
        msg = JSON.parse(line) as T;
      } catch {
        socket.destroy(); // not one of ours
        return;
      }
      onMessage(msg);
    }
  });
}

export function send(socket: net.Socket, msg: MountAsk | MountAnswer): void {
  socket.write(`${JSON.stringify(msg)}\n`);
}
