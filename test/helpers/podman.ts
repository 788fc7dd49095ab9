/**
 * What the podman tests share (podman.test.ts runs podman as root, rootless.test.ts as a user,
 * image-store.test.ts against the image store): finding the tools, the busybox image built from the host's
 * static busybox (no registry is reachable), the build that deletes a file and replaces a directory, the
 * check of its result inside a container, and `Podman`, a rootful podman bound to a private store.
 *
 * Invariants: only `Podman` runs podman, and every call of it carries --root/--runroot/--tmpdir of its
 * temp dir, so nothing reaches the machine's own podman store (but for the blob-info cache podman 4
 * writes under /var/lib/containers/cache whatever --root says: `removeBlobCacheUnlessItExisted`). Image
 * tarballs are made with numeric owner 0 and hold only what `busyboxRootfs` writes.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { run } from "./mounts";
import { tryLgetxattr } from "../../src/sys/libc";

/** `name` found in a PATH directory, executable; undefined when absent. */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir === "") continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** True for an ELF file without a PT_INTERP program header (statically linked). */
export function isStaticElf(file: string): boolean {
  const b = fs.readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) return false;
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return false;
  return true;
}

export function staticBusybox(): string | undefined {
  for (const p of ["/bin/busybox", "/usr/bin/busybox", which("busybox")]) {
    if (p !== undefined && fs.existsSync(p) && isStaticElf(p)) return p;
  }
  return undefined;
}

/** Hard limit from /proc/self/limits ("unlimited" → undefined). */
export function hardLimit(what: string): number | undefined {
  const line = fs
    .readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((l) => l.startsWith(what));
  const hard = line?.trim().split(/\s+/).at(-2);
  return hard === undefined || hard === "unlimited" ? undefined : Number(hard);
}

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function show(what: string, r: Result): string {
  const clip = (s: string): string => (s.length > 1500 ? `…${s.slice(-1500)}` : s);
  return `${what}: exit ${r.status}\nstdout: ${clip(r.stdout)}\nstderr: ${clip(r.stderr)}`;
}

/**
 * A busybox root filesystem in `rootfs`: /bin/busybox and a link per applet, /root /proc /sys /dev /tmp,
 * and `files` (path → content) below it.
 */
export function busyboxRootfs(busybox: string, rootfs: string, files: Record<string, string>): void {
  for (const d of ["bin", "root", "proc", "sys", "dev", "tmp"])
    fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(rootfs, "bin", "busybox"));
  fs.chmodSync(path.join(rootfs, "bin", "busybox"), 0o755);
  for (const applet of run(busybox, ["--list"]).stdout.split("\n")) {
    if (applet !== "" && applet !== "busybox") fs.symlinkSync("busybox", path.join(rootfs, "bin", applet));
  }
  fs.chmodSync(path.join(rootfs, "tmp"), 0o1777);
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(rootfs, f)), { recursive: true });
    fs.writeFileSync(path.join(rootfs, f), text);
  }
}

/** `tar` of `rootfs` as `podman import` takes it (numeric owners 0:0). */
export function tarRootfs(rootfs: string, tar: string): void {
  const tr = run("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", rootfs, "-cf", tar, "."]);
  assert.equal(tr.status, 0, show("tar", tr));
}

/**
 * Writes `tar` (a directory `work` is used to build it): busybox and its applets in /bin, a minimal /etc,
 * files for the build to delete (/etc/doomed, /d/…).
 */
export function imageTar(busybox: string, work: string, tar: string): void {
  const rootfs = path.join(work, "rootfs");
  busyboxRootfs(busybox, rootfs, {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/base-file": "base\n",
    "etc/doomed": "to be deleted\n",
    "d/old1": "old 1\n",
    "d/old2": "old 2\n",
    "d/sub/deep": "deep\n",
  });
  tarRootfs(rootfs, tar);
}

/** A Containerfile FROM `base`: two RUN layers, a deleted file (whiteout) and a replaced directory (opaque). */
export function containerfile(base: string): string {
  return [
    `FROM ${base}`,
    "RUN echo one >/added1 && mkdir -p /opt/app && echo app >/opt/app/conf && rm /etc/doomed",
    "RUN rm -rf /d && mkdir /d && echo new >/d/f && echo two >/added2 && echo more >>/opt/app/conf",
    "",
  ].join("\n");
}

/**
 * A shell script for a container of `containerfile`'s image whose root is a `fsType` mount: "ok …" /
 * "FAIL …" lines, exit 1 on a failure.
 */
export function checkView(fsType: string): string {
  return `
bad=0
expect() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; bad=1; fi; }
expect "/etc/doomed is deleted (whiteout)"          '[ ! -e /etc/doomed ]'
expect "/d shows only the new content (opaque dir)" '[ "$(ls -A /d | tr "\\n" " ")" = "f " ]'
expect "/d/f is the new file"                       '[ "$(cat /d/f)" = new ]'
expect "/d/old1 and /d/sub are gone"                '[ ! -e /d/old1 ] && [ ! -e /d/sub ]'
expect "/added1 and /added2 are there"              '[ "$(cat /added1 /added2)" = "$(printf "one\\ntwo")" ]'
expect "/opt/app/conf has both lines"               '[ "$(cat /opt/app/conf)" = "$(printf "app\\nmore")" ]'
expect "the base files are still there"             '[ "$(cat /etc/base-file)" = base ] && [ -x /bin/sh ]'
expect "/ is a ${fsType} mount"                     'grep -q "^[^ ]* / ${fsType} " /proc/mounts'
exit $bad
`;
}

/** `podman run` arguments: container `name` of `image` deletes /etc/base-file and replaces /opt, then stops. */
export function upperChangesArgs(name: string, image: string): string[] {
  const script = "rm /etc/base-file && rm -rf /opt && mkdir /opt && echo x >/opt/x";
  return ["run", "--name", name, "--network=none", "--pull=never", image, "sh", "-c", script];
}

/** The upper layer of an `upperChangesArgs` container: a 0/0 whiteout, /opt opaque by `opaqueXattr`=y. */
export function checkUpper(upper: string, opaqueXattr: string): void {
  const wh = fs.lstatSync(path.join(upper, "etc", "base-file"));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0, "etc/base-file should be a 0/0 character device");
  assert.equal(tryLgetxattr(path.join(upper, "opt"), opaqueXattr)?.toString(), "y", opaqueXattr);
  assert.deepEqual(fs.readdirSync(path.join(upper, "opt")), ["x"]);
}

export const BLOB_CACHE_PARENT = "/var/lib/containers";

/** Why rootful podman cannot run here (for `this.skip()`), or undefined when it can. */
export function podmanSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "not root (this test runs rootful podman)";
  if (which("podman") === undefined) {
    return "podman is not installed (apt-get install podman runc busybox-static, or run examples/podman/run.sh)";
  }
  if (which("runc") === undefined) {
    return "runc is not installed (crun does not work on cgroup v1 hybrid hosts; apt-get install runc)";
  }
  if (staticBusybox() === undefined)
    return "no static busybox for the image (apt-get install busybox-static)";
  return undefined;
}

/**
 * Returns a teardown step that removes the blob-info cache `podman import` writes to
 * /var/lib/containers/cache whatever --root says, if it was not there when this was called.
 */
export function removeBlobCacheUnlessItExisted(): () => void {
  const cacheExisted = fs.existsSync(BLOB_CACHE_PARENT);
  return () => {
    if (cacheExisted) return;
    fs.rmSync(path.join(BLOB_CACHE_PARENT, "cache"), { recursive: true, force: true });
    try {
      fs.rmdirSync(BLOB_CACHE_PARENT); // only if empty
    } catch {
      // not empty (someone else's podman put things there meanwhile), or already gone
    }
  };
}

export interface PodmanSetup {
  /** The temp dir holding everything (short: podman refuses a runroot longer than 50 characters). */
  T: string;
  /** `[storage]` driver and, for overlay, the mount program (else the kernel's overlayfs). */
  driver: "overlay" | "vfs";
  mountProgram?: string;
  /** Extra environment for every podman call. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Rootful podman bound to a private store in `T` (graph/, runroot/, tmp/, net/, its own containers.conf
 * and storage.conf): runc, cgroupfs, the file events backend, ulimits within our own hard limits, no
 * network.
 */
export class Podman {
  readonly bin = which("podman") as string;
  readonly graph: string;

  constructor(private readonly s: PodmanSetup) {
    this.graph = path.join(s.T, "graph");
    for (const d of ["graph", "runroot", "tmp", "net"]) fs.mkdirSync(path.join(s.T, d), { recursive: true });
    this.writeConfig();
  }

  private writeConfig(): void {
    const { T } = this.s;
    // runc sets the container's rlimits and, without CAP_SYS_RESOURCE, cannot exceed its own hard limits;
    // podman caps its nproc at pid_max.
    const pidMax = Number(fs.readFileSync("/proc/sys/kernel/pid_max", "utf8"));
    const nproc = Math.min(hardLimit("Max processes") ?? pidMax, pidMax);
    const nofile = hardLimit("Max open files");
    const ulimits = [`"nproc=${nproc}:${nproc}"`, ...(nofile ? [`"nofile=${nofile}:${nofile}"`] : [])];
    const program = this.s.mountProgram === undefined ? "" : `mount_program = "${this.s.mountProgram}"\n`;
    fs.writeFileSync(
      path.join(T, "storage.conf"),
      `[storage]\ndriver = "${this.s.driver}"\ngraphroot = "${this.graph}"\nrunroot = "${T}/runroot"\n\n` +
        `[storage.options.overlay]\n${program}`,
    );
    fs.writeFileSync(
      path.join(T, "containers.conf"),
      `[containers]\ndefault_ulimits = [${ulimits.join(", ")}]\n\n` +
        `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n` +
        `tmp_dir = "${T}/tmp"\nimage_copy_tmp_dir = "${T}/tmp"\n\n` +
        `[network]\nnetwork_config_dir = "${T}/net"\n`,
    );
  }

  call(args: readonly string[], timeoutMs = 60_000): Result {
    const { T } = this.s;
    const r = spawnSync(
      this.bin,
      [
        ...["--root", this.graph, "--runroot", path.join(T, "runroot"), "--tmpdir", path.join(T, "tmp")],
        ...["--storage-driver", this.s.driver],
        // podman 4.3 drops storage.conf's driver options (mount_program!) when --root is given.
        ...(this.s.mountProgram === undefined
          ? []
          : ["--storage-opt", `overlay.mount_program=${this.s.mountProgram}`]),
        ...["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"],
        ...args,
      ],
      {
        encoding: "utf8",
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          CONTAINERS_CONF: path.join(T, "containers.conf"),
          CONTAINERS_STORAGE_CONF: path.join(T, "storage.conf"),
          ...this.s.env,
        },
      },
    );
    return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  }

  ok(args: readonly string[], timeoutMs?: number): string {
    const r = this.call(args, timeoutMs);
    assert.equal(r.status, 0, show(`podman ${args.join(" ")}`, r));
    return r.stdout;
  }

  /** `podman run --rm --network=none --pull=never ARGS`. */
  runIn(args: readonly string[]): Result {
    return this.call(["run", "--rm", "--network=none", "--pull=never", ...args]);
  }

  /** Removes every container and image of this store (for teardown; errors ignored). */
  removeAll(): void {
    this.call(["rm", "--all", "--force", "--time", "0"]);
    this.call(["rmi", "--all", "--force"]);
  }
}
