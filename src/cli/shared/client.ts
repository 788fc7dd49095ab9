/**
 * The mount command's side of a shared mount: connect to this (uid, mount namespace)'s server, start it
 * (detached) when there is none, hand it the command line and print its answer.
 *
 * Invariants:
 * - Loads nothing but node builtins, the small modules of this folder and ../node-flags: the whole
 *   mount, checks included, is the server's work, so this process costs little more than Node's start.
 * - Exits 0 only once the server answered that the mount is live; otherwise prints the server's one
 *   error line and exits non-zero, as a daemon-per-mount command does. A server that goes away after
 *   taking the request is an error; one that closes the connection before (it was on its way out)
 *   is asked again, a new one started if need be, within START_DEADLINE_MS.
 * - The server is started with no stdio of ours: a caller that reads our output to its end (a container
 *   engine) is not held up by it.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { DAEMON_NODE_FLAGS } from "../node-flags";
import type { SharedMountArgs } from "./detect";
import { socketPath } from "./paths";
import { readMessages, send, type MountAnswer, type MountAsk } from "./protocol";

const START_DEADLINE_MS = 10_000;
const SERVER_FILE = path.join(__dirname, "server-main.js");
export const FACTORY_ENV = "UNIONFS_TS_TEST_FACTORY";

/** The result of one try: an answer, or `retry` (no server, or it left before taking the request). */
type Outcome = Exclude<MountAnswer, { type: "accepted" }> | { type: "retry"; why: string };

class ClientError extends Error {}

function connect(sock: string): Promise<net.Socket | undefined> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    s.once("connect", () => resolve(s));
    s.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ECONNREFUSED") resolve(undefined);
      else reject(new ClientError(`cannot reach the shared server at ${sock}: ${err.message}`));
    });
  });
}

/**
 * Starts a server for `sock` and waits until it listens (or found another one listening): it says so on
 * its fd 3, a pipe, and reports there why it could not.
 */
function startServer(sock: string, deadline: number): Promise<void> {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, SERVER_FILE, sock], {
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "pipe"],
  });
  const pipe = child.stdio[3] as net.Socket;
  return new Promise<void>((resolve, reject) => {
    let said = "";
    const timer = setTimeout(() => finish("the shared server did not start in time"), deadline - Date.now());
    const finish = (err?: string): void => {
      clearTimeout(timer);
      pipe.destroy();
      child.unref();
      if (err === undefined) resolve();
      else reject(new ClientError(err));
    };
    pipe.setEncoding("utf8");
    pipe.on("data", (d: string) => (said += d));
    pipe.on("end", () => (said.startsWith("listening") ? finish() : finish(said.trim() || "no answer")));
    child.on("error", (err) => finish(`cannot start the shared server: ${err.message}`));
  });
}

function ask(sock: net.Socket, msg: MountAsk): Promise<Outcome> {
  return new Promise((resolve) => {
    let accepted = false;
    readMessages<MountAnswer>(sock, (answer) => {
      if (answer.type === "accepted") accepted = true;
      else resolve(answer);
    });
    sock.on("error", () => undefined); // 'close' follows and decides
    sock.on("close", () =>
      resolve(
        accepted
          ? {
              type: "done",
              status: 1,
              stderr: "unionfs-ts: the shared server ended before the mount was ready\n",
            }
          : { type: "retry", why: "the shared server closed the connection" },
      ),
    );
    send(sock, msg);
  });
}

function factoryOf(env: NodeJS.ProcessEnv): MountAsk["factory"] {
  const spec = env[FACTORY_ENV];
  if (spec === undefined || spec === "") return undefined;
  const hash = spec.lastIndexOf("#");
  return { module: spec.slice(0, hash), name: spec.slice(hash + 1) };
}

async function tryMount(msg: MountAsk): Promise<Outcome> {
  const deadline = Date.now() + START_DEADLINE_MS;
  const sock = socketPath();
  let why = "";
  while (Date.now() < deadline) {
    const conn = await connect(sock);
    if (conn === undefined) {
      await startServer(sock, deadline);
      continue;
    }
    const out = await ask(conn, msg);
    conn.destroy();
    if (out.type !== "retry") return out;
    why = out.why;
  }
  throw new ClientError(`the shared server did not take the mount in time (${why})`);
}

/**
 * Mounts through the shared server; resolves to the exit status, or to "fallback" when this mount needs
 * a daemon of its own (the full CLI then serves it).
 */
export async function sharedMount(args: SharedMountArgs): Promise<number | "fallback"> {
  const msg: MountAsk = { type: "mount", ...args, cwd: process.cwd() };
  const factory = factoryOf(process.env);
  if (factory !== undefined) msg.factory = factory;
  let out: Outcome;
  try {
    out = await tryMount(msg);
  } catch (err) {
    if (!(err instanceof ClientError) && (err as NodeJS.ErrnoException).code === undefined) throw err;
    process.stderr.write(`unionfs-ts: ${(err as Error).message.split("\n")[0]}\n`);
    return 1;
  }
  if (out.type === "fallback") {
    if (args.verbose) process.stderr.write(`unionfs-ts: not shared: ${out.reason}\n`);
    return "fallback";
  }
  if (out.type === "retry") return 1; // unreachable: tryMount never returns it
  fs.writeSync(2, out.stderr);
  return out.status;
}
