/**
 * Mounting through mount(8), `mount -t fuse.unionfs-ts SRC MNT -o OPTS`, with this checkout's build as
 * the helper mount(8) runs.
 *
 * mount(8) looks for `mount.fuse.unionfs-ts` only in /sbin (a compiled-in path), and the one installed
 * there (if any) runs whichever installation ran `unionfs-ts install-helper`. So mount(8) runs in a
 * private mount namespace where a read-only overlay over /sbin adds the `mount.fuse.unionfs-ts` that this
 * build's `install-helper --dir` writes (it runs this build's mount-helper.js); the host's /sbin is never
 * touched. For the FUSE mount made there to show in the test's namespace, the directory holding
 * the mountpoint is first bind-mounted on itself and made shared: the private namespace's copy of it is
 * a peer, so the mount propagates back (and unmounting it here propagates there).
 *
 * Invariants: outside that directory the test's namespace is unchanged (the /sbin overlay exists only
 * in the private namespace, which ends with the daemon); teardown unmounts the union, waits for its
 * daemon (found by its test tag) and SIGKILLs it if it stays, then unmounts the shared bind.
 *
 * Caveat: while it lives (one test), the private namespace holds copies of every mount that existed
 * when it was made; a FUSE mount unmounted elsewhere meanwhile keeps its daemon until then.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { boundedChild, must } from "./faults";
import { forceUnmount, mountsAt, waitFor } from "./mounts";
import {
  CLI_PATH,
  daemonPidsFor,
  EXIT_DEADLINE_MS,
  isAlive,
  killAndWait,
  MOUNT_DEADLINE_MS,
  newTag,
  TAG_VAR,
  type Cleanup,
} from "./unionfs";

/** dist/src/cli/mount-helper.js of this build. */
export const MOUNT_HELPER = path.join(path.dirname(CLI_PATH), "mount-helper.js");

export interface Mount8 {
  readonly mnt: string;
  readonly tag: string;
  daemonPids(): number[];
}

const NS_SCRIPT = String.raw`
mount -t overlay overlay -o "lowerdir=$1:$2" "$2" || exit 97
shift 2
exec mount "$@"
`;

/** A directory holding `mount.fuse.unionfs-ts` as this build's `install-helper --dir` writes it. */
function helperDir(t: Cleanup): string {
  const dir = t.tempDir("mount8-sbin");
  must(process.execPath, [CLI_PATH, "install-helper", "--dir", dir]);
  return dir;
}

/** Makes `dir` a shared mount (a bind on itself), unmounted in teardown. */
function shareDir(t: Cleanup, dir: string): void {
  t.defer(`unmount the shared bind ${dir}`, () => forceUnmount(dir));
  must("mount", ["--bind", dir, dir]);
  must("mount", ["--make-shared", dir]);
}

/**
 * `mount -t fuse.unionfs-ts SRC MNT [-o OPTS]` as above; `root` is the directory holding `mnt` (it becomes
 * a shared mount). Resolves once the union is mounted at `mnt` in this namespace.
 */
export function mountThroughMount8(
  t: Cleanup,
  root: string,
  src: string,
  mnt: string,
  options: readonly string[],
): Promise<Mount8> {
  const opts = options.length > 0 ? ["-o", options.join(",")] : [];
  return mount8(t, root, mnt, ["-t", "fuse.unionfs-ts", src, mnt, ...opts]);
}

/**
 * `mount -T FSTAB MNT` as above, FSTAB holding `SRC MNT fuse.unionfs-ts OPTS 0 0` (the line mount(8)
 * reads from /etc/fstab; `noauto` lines too, since MNT is named).
 */
export function mountFstabThroughMount8(
  t: Cleanup,
  root: string,
  src: string,
  mnt: string,
  options: string,
): Promise<Mount8> {
  const fstab = path.join(t.tempDir("mount8-fstab"), "fstab");
  fs.writeFileSync(fstab, `${src} ${mnt} fuse.unionfs-ts ${options} 0 0\n`);
  return mount8(t, root, mnt, ["-T", fstab, mnt]);
}

/** Runs mount(8) with `mountArgs` in the private namespace; resolves once the union is at `mnt`. */
async function mount8(t: Cleanup, root: string, mnt: string, mountArgs: readonly string[]): Promise<Mount8> {
  const sbin = helperDir(t);
  shareDir(t, root);
  const tag = newTag();
  const daemonPids = (): number[] => daemonPidsFor(tag, mnt).filter(isAlive);
  t.defer(`unmount ${mnt}`, async () => {
    forceUnmount(mnt);
    await waitFor(() => daemonPids().length === 0, EXIT_DEADLINE_MS, "the daemon to exit").catch(() =>
      killAndWait(daemonPids()),
    );
  });
  const args = ["-c", NS_SCRIPT, "sh", sbin, fs.realpathSync("/sbin"), ...mountArgs];
  const r = await boundedChild("unshare", ["--mount", "--propagation", "unchanged", "--", "sh", ...args], {
    timeoutMs: MOUNT_DEADLINE_MS,
    env: { ...process.env, [TAG_VAR]: tag },
  });
  if (r.status !== 0) {
    const why = r.status === 97 ? "the overlay over /sbin failed" : `mount(8) exited ${r.status ?? r.signal}`;
    throw new Error(`${why}: ${r.stderr.trim()}`);
  }
  await waitFor(
    () => mountsAt(mnt).some((m) => m.fsType === "fuse.unionfs-ts"),
    MOUNT_DEADLINE_MS,
    `the union at ${mnt}`,
  );
  assertThisBuild(daemonPids());
  return { mnt, tag, daemonPids };
}

/** The daemon must run this build, not the one /sbin's helper points at. */
function assertThisBuild(pids: readonly number[]): void {
  const dist = path.dirname(CLI_PATH);
  const argv = pids.map((p) => fs.readFileSync(`/proc/${p}/cmdline`, "latin1").split("\0").join(" "));
  if (!argv.some((a) => a.includes(`${dist}/`))) {
    throw new Error(
      `no daemon of this build (${dist}) serves the mount; found: ${argv.join(" | ") || "none"}`,
    );
  }
}
