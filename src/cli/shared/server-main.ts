/**
 * Entry of the shared serving process (started by client.ts as `node server-main.js SOCKET`, detached,
 * its fd 3 a pipe to the starting command).
 *
 * Invariants: the socket is taken (and the serving thread, hub.ts, started) before anything heavy is loaded, so the first mount's request waits
 * as little as possible; fd 3 then gets "listening" (this server, or another one that answers on the
 * socket) or the one line that says why not, and is closed. The working directory is / so that this
 * process keeps no directory busy.
 */
import * as fs from "node:fs";
import { startHub } from "../../fuse/kernel/link";
import { takeSocket } from "./listen";

function say(line: string): void {
  try {
    fs.writeSync(3, `${line}\n`);
    fs.closeSync(3);
  } catch {
    // the starting command is gone
  }
}

async function main(sock: string): Promise<void> {
  process.chdir("/");
  const l = await takeSocket(sock);
  if (l === undefined) {
    say("listening (another server)");
    return;
  }
  startHub(); // the thread that serves the mounts boots while the rest loads
  say("listening"); // connections wait in the socket's backlog until the handler below is set
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { SharedServer } = require("./server") as typeof import("./server");
  new SharedServer(l).start();
}

const sock = process.argv[2];
if (sock === undefined) {
  process.stderr.write("usage: server-main.js SOCKET\n");
  process.exitCode = 2;
} else {
  main(sock).catch((err: unknown) => {
    say(`the shared server could not start: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  });
}
