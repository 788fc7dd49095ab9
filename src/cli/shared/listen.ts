/**
 * Taking the shared server's socket path, so that exactly one live server answers on it.
 *
 * Invariants:
 * - The path only ever names a listening socket or a dead one: the server listens on a private name
 *   first and then links it to the path, which fails when the path exists; a path whose socket refuses
 *   connections (its server died) is removed and taken.
 * - When another server answers on the path, `takeSocket` resolves undefined: that server serves.
 * - `release` removes the path only while it is still this server's socket.
 */
import * as fs from "node:fs";
import * as net from "node:net";

export interface Listening {
  server: net.Server;
  /** Removes the socket path if it is still ours, and stops listening. */
  release(): void;
}

function listenAt(p: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(p, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

function answers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

function linkOnce(from: string, to: string): boolean {
  try {
    fs.linkSync(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
}

export async function takeSocket(sock: string): Promise<Listening | undefined> {
  const own = `${sock}.${process.pid}`;
  fs.rmSync(own, { force: true });
  const server = await listenAt(own);
  try {
    let linked = linkOnce(own, sock);
    if (!linked) {
      if (await answers(sock)) {
        server.close();
        return undefined;
      }
      fs.rmSync(sock, { force: true }); // a dead server's
      linked = linkOnce(own, sock);
    }
    if (!linked) {
      server.close();
      return undefined; // another server took it meanwhile
    }
  } finally {
    fs.rmSync(own, { force: true });
  }
  const ino = fs.statSync(sock).ino;
  return {
    server,
    release() {
      try {
        if (fs.statSync(sock).ino === ino) fs.rmSync(sock, { force: true });
      } catch {
        // already gone
      }
      server.close();
    },
  };
}
