/**
 * Where the shared serving process of this (uid, mount namespace) listens.
 *
 * Invariants:
 * - One socket per uid and mount namespace: a process in another mount namespace (rootless podman's
 *   user+mount namespace, a container) gets a server of its own, living in its namespace, since the
 *   server's mount(8) mounts in the namespace it runs in. The socket is named after the namespace's
 *   inode (`/proc/self/ns/mnt`).
 * - The directory is /run/unionfs-ts for root, $XDG_RUNTIME_DIR/unionfs-ts otherwise (root inside a user
 *   namespace, where /run is not its own, falls back to the latter), else a per-uid directory in the
 *   temporary directory ($UNIONFS_TS_SOCKET_DIR overrides them all). It is used only when it is a directory owned by us that no one else may enter
 *   (0700), so only our own uid can ask the server to mount.
 * - Loads nothing but node:fs, node:os and node:path.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** Names the socket's directory instead (tests: a server of their own). */
export const SOCKET_DIR_ENV = "UNIONFS_TS_SOCKET_DIR";

function candidates(uid: number, env: NodeJS.ProcessEnv): string[] {
  const own = env[SOCKET_DIR_ENV];
  if (own !== undefined && path.isAbsolute(own)) return [own];
  const xdg = env.XDG_RUNTIME_DIR;
  const dirs = uid === 0 ? ["/run/unionfs-ts"] : [];
  if (xdg !== undefined && path.isAbsolute(xdg)) dirs.push(path.join(xdg, "unionfs-ts"));
  // Named after the user namespace too: root of one user's namespace is not root of another's.
  dirs.push(path.join(os.tmpdir(), `unionfs-ts-${uid}-${fs.statSync("/proc/self/ns/user").ino}`));
  return dirs;
}

/** `dir`, created 0700 when missing; false unless it is a real directory of `uid` closed to others. */
function usable(dir: string, uid: number): boolean {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") return false;
  }
  try {
    const st = fs.lstatSync(dir);
    return st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0;
  } catch {
    return false;
  }
}

/** The socket of this process's shared server; throws one line when no directory can hold it. */
export function socketPath(env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.() ?? 0;
  const ns = fs.statSync("/proc/self/ns/mnt").ino;
  const tried = candidates(uid, env);
  const dir = tried.find((d) => usable(d, uid));
  if (dir === undefined) {
    throw new Error(`no directory for the shared server's socket (tried ${tried.join(", ")})`);
  }
  return path.join(dir, `mnt-${ns}.sock`);
}
