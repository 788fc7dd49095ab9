/**
 * What the podman tests share (podman.test.ts runs podman as root, rootless.test.ts as a user): finding
 * the tools, the busybox image built from the host's static busybox (no registry is reachable), the
 * build that deletes a file and replaces a directory, and the check of its result inside a container.
 *
 * Invariants: nothing here runs podman; the image tarball is made with numeric owner 0 and holds only
 * what `imageTar` writes.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
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
 * Writes `tar` (a directory `work` is used to build it): busybox and its applets in /bin, a minimal /etc,
 * files for the build to delete (/etc/doomed, /d/…).
 */
export function imageTar(busybox: string, work: string, tar: string): void {
  const rootfs = path.join(work, "rootfs");
  for (const d of ["bin", "etc", "d/sub", "root", "proc", "sys", "dev", "tmp"])
    fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(rootfs, "bin", "busybox"));
  fs.chmodSync(path.join(rootfs, "bin", "busybox"), 0o755);
  for (const applet of run(busybox, ["--list"]).stdout.split("\n")) {
    if (applet !== "" && applet !== "busybox") fs.symlinkSync("busybox", path.join(rootfs, "bin", applet));
  }
  fs.chmodSync(path.join(rootfs, "tmp"), 0o1777);
  const files: Record<string, string> = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/base-file": "base\n",
    "etc/doomed": "to be deleted\n",
    "d/old1": "old 1\n",
    "d/old2": "old 2\n",
    "d/sub/deep": "deep\n",
  };
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(rootfs, f), text);
  const tr = run("tar", ["--numeric-owner", "--owner=0", "--group=0", "-C", rootfs, "-cf", tar, "."]);
  assert.equal(tr.status, 0, show("tar", tr));
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
