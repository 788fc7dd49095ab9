/**
 * Mounting the FUSE device: by mount(2) itself when we are root, else (or when that fails) by mount(8).
 *
 * Invariants:
 * - Both ways make the same mount: type fuse.unionfs-ts, the sanitized fsname as its source, the same
 *   options (`fd`, which the table does not show, aside) and the generic VFS flags applied in order,
 *   later ones winning, as mount(8) applies them.
 * - mount(8) runs without a shell, stdin closed, with a time limit; its failure becomes an errno error
 *   whose message is its error output on one line. A failed mount(2) changes nothing (the kernel checks
 *   the caller, the mountpoint and the options before it takes the device), so mount(8) is then run as
 *   before and reports the failure in its own words.
 * - The fsname can never be taken for an option, a device spec or several lines.
 * - UNIONFS_TS_MOUNT8=1 in the environment makes even root mount through mount(8) (tests of its errors).
 */
import { mountNew } from "../../sys/libc";
import { mountError, runCommand } from "../control";
import { FS_TYPE, VFS_FLAGS } from "../transport";

/** The source shown in the mount table: no control characters, never empty, never a device spec. */
export function sanitizeFsname(fsname: string): string {
  // eslint-disable-next-line no-control-regex
  let s = fsname.replace(/[\x00-\x1f\x7f]/g, "?");
  if (s === "") s = "unionfs-ts";
  if (/^(LABEL|UUID|PARTUUID|PARTLABEL|ID)=/i.test(s)) s = `unionfs-ts:${s}`;
  return s;
}

/** Each VFS flag's MS_* bit (linux/mount.h) and whether it sets (true) or clears it, as libmount maps them. */
const MS_BITS: Readonly<Record<string, readonly [number, boolean]>> = {
  ro: [0x1, true],
  rw: [0x1, false],
  nosuid: [0x2, true],
  suid: [0x2, false],
  nodev: [0x4, true],
  dev: [0x4, false],
  noexec: [0x8, true],
  exec: [0x8, false],
  sync: [0x10, true],
  async: [0x10, false],
  dirsync: [0x80, true],
  noatime: [0x400, true],
  atime: [0x400, false],
  nodiratime: [0x800, true],
  diratime: [0x800, false],
  relatime: [0x200000, true],
  norelatime: [0x200000, false],
  strictatime: [0x1000000, true],
  nostrictatime: [0x1000000, false],
  lazytime: [0x2000000, true],
  nolazytime: [0x2000000, false],
};

/** The MS_* flags of the VFS flags `flags`, applied in order. */
export function msFlagsOf(flags: readonly string[]): number {
  let out = 0;
  for (const f of flags) {
    const bit = MS_BITS[f];
    if (bit !== undefined) out = bit[1] ? out | bit[0] : out & ~bit[0];
  }
  return out;
}

/** The mount options but the device's fd (`fd=N`) and the VFS flags, which go apart. */
function fuseOptions(): string {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  return `rootmode=40000,user_id=${uid},group_id=${gid},default_permissions,allow_other`;
}

/** mount(2) of device `fd`; false when it failed (nothing is mounted then). */
function mountDirect(fd: number, source: string, mountpoint: string, vfs: readonly string[]): boolean {
  if (process.geteuid?.() !== 0 || process.env.UNIONFS_TS_MOUNT8 === "1") return false;
  try {
    mountNew(source, mountpoint, FS_TYPE, msFlagsOf(vfs), `fd=${fd},${fuseOptions()}`);
    return true;
  } catch {
    return false;
  }
}

export async function runMount(
  fd: number,
  fsname: string,
  mountpoint: string,
  flags: readonly string[] = [],
): Promise<void> {
  const vfs = flags.filter((f) => VFS_FLAGS.has(f));
  const source = sanitizeFsname(fsname);
  if (mountDirect(fd, source, mountpoint, vfs)) return;
  const opts = ["fd=3", fuseOptions(), ...vfs].join(",");
  const args = ["-i", "-t", FS_TYPE, "-o", opts, "--", source, mountpoint];
  const r = await runCommand("mount", args, { fd });
  if (!r.ok) throw mountError(r.stderr);
}
