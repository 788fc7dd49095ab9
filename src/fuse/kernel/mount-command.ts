/**
 * The mount(8) and umount(8) commands as the mounting thread runs them, and their error reporting.
 *
 * Invariants: commands run without a shell, stdin closed, with a time limit; a failure becomes an errno
 * error whose message is the command's error output on one line; the fsname given to mount(8) can never
 * be taken for an option, a device spec or several lines.
 */
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

export async function runMount(
  fd: number,
  fsname: string,
  mountpoint: string,
  flags: readonly string[] = [],
): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const vfs = flags.filter((f) => VFS_FLAGS.has(f));
  const opts = [
    "fd=3,rootmode=40000",
    `user_id=${uid},group_id=${gid},default_permissions,allow_other`,
    ...vfs,
  ].join(",");
  const args = ["-i", "-t", FS_TYPE, "-o", opts, "--", sanitizeFsname(fsname), mountpoint];
  const r = await runCommand("mount", args, { fd });
  if (!r.ok) throw mountError(r.stderr);
}
