/**
 * The mount(8) and umount(8) commands as the mounting thread runs them, and their error reporting.
 *
 * Invariants: commands run without a shell, stdin closed, with a time limit; a failure becomes an errno
 * error whose message is the command's error output on one line; the fsname given to mount(8) can never
 * be taken for an option, a device spec or several lines.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FsError } from "../../errors";
import { runCommand } from "../control";
import { VFS_FLAGS } from "../transport";

export const FS_TYPE = "fuse.unionfs-ts";

/** An errno error whose message is the command's error output on one line. */
export function mountError(stderr: string): FsError {
  const line = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join("; ");
  const code = /busy/i.test(line)
    ? "EBUSY"
    : /does not exist|no such file/i.test(line)
      ? "ENOENT"
      : /permission|superuser|not permitted/i.test(line)
        ? "EPERM"
        : "EIO";
  const err = new FsError(code, line);
  err.message = line;
  return err;
}

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

/** The absolute, symlink-free mountpoint; it must be an existing directory. */
export function checkMountpoint(p: string): string {
  const real = fs.realpathSync(path.resolve(p));
  if (!fs.statSync(real).isDirectory()) throw new FsError("ENOTDIR", `mountpoint ${real} is not a directory`);
  return real;
}
