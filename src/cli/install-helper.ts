/**
 * `unionfs-ts install-helper`: the explicit step that makes mount(8) (and so /etc/fstab) find this
 * installation's `mount.fuse.unionfs-ts`. mount(8) looks for helpers only in /sbin, and nothing else
 * (not npm, not scripts/setup.sh) writes there.
 *
 * Invariants:
 * - It writes one file, DIR/mount.fuse.unionfs-ts (DIR defaults to /sbin): a small sh script that runs
 *   this installation's mount-helper.js with the node running now, both by absolute path (mount(8) at
 *   boot, or under sudo, may have neither on PATH). The script is written beside and renamed into place.
 * - It replaces only what is "ours" (such a script, or a symlink, running this installation's helper);
 *   another installation's helper or any other file is kept, with one line saying what is there, unless
 *   --force. `--uninstall` removes only ours, unless --force.
 * - Bad input or a refusal is one line on stderr and exit 2 (1 when the file system refuses).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { UsageError } from "../errors";

export const HELPER_NAME = "mount.fuse.unionfs-ts";
const MARK = "# unionfs-ts install-helper";

export interface InstallHelperFlags {
  dir?: string;
  force?: boolean;
  uninstall?: boolean;
}

/** This installation's mount(8) helper: dist/src/cli/mount-helper.js beside this module. */
export function ownHelper(): string {
  return nodePath.join(__dirname, "mount-helper.js");
}

/** The script written to DIR/mount.fuse.unionfs-ts. */
export function helperScript(node: string, helper: string): string {
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  return `#!/bin/sh\n${MARK}\n# helper=${helper}\nexec ${quote(node)} ${quote(helper)} "$@"\n`;
}

/** Which helper an existing DIR/mount.fuse.unionfs-ts runs, if it is one of ours; undefined for anything else. */
export function installedHelper(file: string): string | undefined {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (st === undefined) return undefined;
  if (st.isSymbolicLink()) {
    const target = nodePath.resolve(nodePath.dirname(file), fs.readlinkSync(file));
    return nodePath.basename(target) === "mount-helper.js" ? target : undefined;
  }
  if (!st.isFile() || st.size > 4096) return undefined;
  const text = fs.readFileSync(file, "utf8");
  return text.includes(`\n${MARK}\n`) ? /^# helper=(.*)$/m.exec(text)?.[1] : undefined;
}

/** What is at `file` now, for a refusal: "a symlink to X", "another installation's helper (X)", "a file". */
function describe(file: string): string {
  const theirs = installedHelper(file);
  if (theirs !== undefined) return `the helper of another installation (${theirs})`;
  return fs.lstatSync(file).isSymbolicLink() ? `a symlink to ${fs.readlinkSync(file)}` : "a file of its own";
}

function same(a: string, b: string): boolean {
  const real = (p: string): string => (fs.existsSync(p) ? fs.realpathSync(p) : nodePath.resolve(p));
  return real(a) === real(b);
}

export function installHelperCommand(flags: InstallHelperFlags, helper = ownHelper()): number {
  const dir = nodePath.resolve(flags.dir ?? "/sbin");
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`'${dir}' is not a directory`);
  }
  const file = nodePath.join(dir, HELPER_NAME);
  const exists = fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined;
  const current = exists ? installedHelper(file) : undefined;
  const ours = current !== undefined && same(current, helper);
  if (exists && !ours && flags.force !== true) {
    const what = flags.uninstall === true ? "not removing it" : "not replacing it";
    throw new UsageError(`${file} is ${describe(file)}: ${what} (--force to do it anyway)`);
  }
  if (flags.uninstall === true) {
    if (exists) fs.unlinkSync(file);
    process.stdout.write(exists ? `removed ${file}\n` : `${file} is not installed\n`);
    return 0;
  }
  if (!fs.existsSync(helper)) throw new UsageError(`${helper} is missing: build first (npx tsc -p .)`);
  const tmp = nodePath.join(dir, `.${HELPER_NAME}.${process.pid}`);
  try {
    fs.writeFileSync(tmp, helperScript(process.execPath, helper), { mode: 0o755 });
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  process.stdout.write(`installed ${file}: runs ${process.execPath} ${helper}\n`);
  return 0;
}
