/**
 * `import`: unpack an OCI layer tarball (plain or gzip) into a new or empty directory, ready to be used
 * as a branch.
 *
 * Invariants:
 * - The whole archive is read once before anything is created: a file that is not a tar, a damaged one,
 *   or any entry with an absolute path or a `..` component (its name, or a hard link's target) is
 *   refused with one line and nothing on disk changes. node-tar's own protections stay on during
 *   extraction (no `preservePaths`): it refuses `..`, strips leading `/`, and never extracts through a
 *   symlink; any entry it refuses fails the import.
 * - Format `aufs` (default) keeps `.wh.<name>` and `.wh..wh..opq` entries as the files they are; format
 *   `overlay` turns them into 0/0 character devices and `trusted.overlay.opaque=y` (a whiteout of a name
 *   the same layer also provides as a directory makes that directory opaque instead). Other `.wh..wh.*`
 *   entries (aufs bookkeeping, a union's work dir) are left out with a warning.
 * - node-tar writes files, directories, symlinks and hard links; FIFOs and device nodes, which it does
 *   not create, are made here with mknod. Afterwards every entry gets the archive's owner (when running
 *   as root), exact permission bits (node-tar forces u+rwx on directories and lets the umask apply) and
 *   times, directories last; no step follows a symlink or leaves the target directory.
 * - On failure after extraction began, whatever was created is removed again (the directory itself too
 *   when it did not exist before).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { extract, list, type ReadEntry } from "tar";
import { codeOf } from "../errors";
import * as sys from "../sys/libc";
import { UsageError } from "../unionfs/branches";
import { OPAQUE_MARKER, WH_PREFIX } from "../whiteout";
import { S_IFBLK, S_IFCHR, S_IFIFO } from "./walk";

export type ImportFormat = "aufs" | "overlay";

export interface ImportOptions {
  format?: ImportFormat;
  /** Called with one line of text for each entry left out or warning from node-tar. */
  onWarning?: (message: string) => void;
}

export interface ImportSummary {
  entries: number;
  whiteouts: number;
  opaqueDirs: number;
}

/** What the first pass learns about one entry. */
interface EntryRecord {
  /** Normalised: no leading "./", no trailing "/"; "" is the target directory itself. */
  path: string;
  type: string;
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  mtime: Date | undefined;
  atime: Date | undefined;
  devmaj: number;
  devmin: number;
}

/** The archive's name for an entry, normalised: "./a/b/" → "a/b", "./" → "". */
export function normaliseEntryPath(p: string): string {
  let s = p;
  while (s.startsWith("./")) s = s.slice(2);
  if (s === ".") s = "";
  return s.replace(/\/+$/, "");
}

/** Why an entry name is unsafe to extract, or undefined. */
export function unsafeEntryPath(p: string): string | undefined {
  if (p.startsWith("/")) return "is an absolute path";
  if (p.split("/").includes("..")) return "contains '..'";
  return undefined;
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

/** Entries node-tar does not extract and this module creates itself. */
function isNode(type: string): boolean {
  return type === "CharacterDevice" || type === "BlockDevice" || type === "FIFO";
}

/** Linux `makedev`: the dev_t of a major/minor pair, as glibc encodes it. */
export function makedev(major: number, minor: number): number {
  const low = ((major & 0xfff) << 8) | (minor & 0xff);
  return low + Math.floor(minor / 0x100) * 2 ** 20 + Math.floor(major / 0x1000) * 2 ** 44;
}

/** First pass: read every header, refuse damaged archives and unsafe names. */
async function scan(file: string): Promise<EntryRecord[]> {
  const records: EntryRecord[] = [];
  let bad: string | undefined;
  let unsafe: string | undefined;
  try {
    await list({
      file,
      onReadEntry: (e: ReadEntry) => {
        const raw = e.path;
        const why = unsafeEntryPath(raw) ?? (e.type === "Link" ? linkProblem(e.linkpath) : undefined);
        if (why !== undefined && unsafe === undefined) {
          unsafe =
            e.type === "Link" && unsafeEntryPath(raw) === undefined
              ? `layer entry '${raw}' is a hard link to '${e.linkpath ?? ""}', which ${why}`
              : `layer entry '${raw}' ${why}`;
        }
        records.push({
          path: normaliseEntryPath(raw),
          type: e.type,
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
          mtime: e.mtime,
          atime: e.atime,
          devmaj: e.header.devmaj,
          devmin: e.header.devmin,
        });
      },
      onwarn: (code: string, message: string) => {
        if (bad !== undefined) return;
        if (code === "TAR_BAD_ARCHIVE" || code === "TAR_ENTRY_INVALID" || code === "TAR_ABORT") bad = message;
      },
    });
  } catch (err) {
    if (codeOf(err) === "ENOENT") throw new UsageError(`layer archive '${file}' does not exist`);
    if (codeOf(err) === "EISDIR") throw new UsageError(`layer archive '${file}' is a directory`);
    throw new UsageError(`cannot read '${file}': ${err instanceof Error ? err.message : String(err)}`);
  }
  if (bad !== undefined) {
    throw new UsageError(
      records.length === 0
        ? `'${file}' is not a tar archive (${bad})`
        : `'${file}' is a damaged tar archive (${bad})`,
    );
  }
  if (unsafe !== undefined) throw new UsageError(`refusing to import '${file}': ${unsafe}`);
  return records;
}

function linkProblem(linkpath: string | undefined): string | undefined {
  return linkpath === undefined ? undefined : unsafeEntryPath(linkpath);
}

/** Creates `dir` when missing; refuses one that is not an empty directory. Returns whether it was made. */
function prepareTarget(dir: string): boolean {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if (codeOf(err) !== "ENOENT") throw err;
  }
  if (st === undefined) {
    try {
      fs.mkdirSync(dir, { mode: 0o755 });
    } catch (err) {
      if (codeOf(err) === "ENOENT") throw new UsageError(`the parent of target '${dir}' does not exist`);
      throw err;
    }
    return true;
  }
  if (!st.isDirectory()) throw new UsageError(`target '${dir}' exists and is not a directory`);
  if (fs.readdirSync(dir).length > 0) throw new UsageError(`target directory '${dir}' is not empty`);
  return false;
}

/**
 * Absolute path of archive path `rel` below `realRoot`, provided every directory on the way is a real
 * directory (never a symlink); missing ones are made (mode 0755) when `create`. Undefined otherwise.
 */
function safePath(realRoot: string, rel: string, create: boolean): string | undefined {
  if (rel === "") return realRoot;
  const parts = rel.split("/");
  const name = parts.pop() as string;
  let cur = realRoot;
  for (const part of parts) {
    cur = nodePath.join(cur, part);
    const st = lstatOrUndefined(cur);
    if (st === undefined && create) fs.mkdirSync(cur, { mode: 0o755 });
    else if (!st?.isDirectory()) return undefined;
  }
  return nodePath.join(cur, name);
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

function nodeMode(type: string): number {
  return type === "CharacterDevice" ? S_IFCHR : type === "BlockDevice" ? S_IFBLK : S_IFIFO;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Unpacks the layer archive `file` into `dir` (UTF-8 text paths). Throws UsageError for bad input, with
 * nothing created.
 */
export async function importLayer(
  file: string,
  dir: string,
  opts: ImportOptions = {},
): Promise<ImportSummary> {
  const format = opts.format ?? "aufs";
  const warn = opts.onWarning ?? (() => undefined);
  const records = await scan(file);
  const target = nodePath.resolve(dir);
  const created = prepareTarget(target);
  try {
    return await unpack(file, fs.realpathSync(target), records, format, warn);
  } catch (err) {
    if (created) fs.rmSync(target, { recursive: true, force: true });
    else
      for (const name of fs.readdirSync(target))
        fs.rmSync(nodePath.join(target, name), { recursive: true, force: true });
    throw err;
  }
}

async function unpack(
  file: string,
  root: string,
  records: EntryRecord[],
  format: ImportFormat,
  warn: (message: string) => void,
): Promise<ImportSummary> {
  const summary: ImportSummary = { entries: 0, whiteouts: 0, opaqueDirs: 0 };
  const ours = (rel: string, type: string): "node" | "whiteout" | "opaque" | "skip" | undefined => {
    const base = baseName(rel);
    if (rel.split("/").some((c) => c.startsWith(`${WH_PREFIX}${WH_PREFIX}`) && c !== OPAQUE_MARKER)) {
      return "skip";
    }
    if (isNode(type)) return "node";
    if (format === "overlay" && base === OPAQUE_MARKER) return "opaque";
    if (format === "overlay" && base.startsWith(WH_PREFIX)) return "whiteout";
    return undefined;
  };
  const errors: string[] = [];
  await extract({
    file,
    cwd: root,
    preserveOwner: isRoot(),
    filter: (p: string, entry: unknown) => {
      const type = (entry as ReadEntry).type;
      return ours(normaliseEntryPath(p), type) === undefined;
    },
    onwarn: (code: string, message: string) => {
      if (code === "TAR_ENTRY_ERROR" || code === "TAR_BAD_ARCHIVE" || code === "TAR_ENTRY_INVALID") {
        errors.push(message);
      } else if (code !== "TAR_ENTRY_INFO") warn(message);
    },
  });
  if (errors.length > 0) throw new UsageError(`cannot import '${file}': ${errors[0]}`);

  // The last record of each path is what is on disk.
  const last = new Map<string, EntryRecord>();
  for (const r of records) {
    last.delete(r.path);
    last.set(r.path, r);
  }

  for (const r of last.values()) {
    const kind = ours(r.path, r.type);
    if (kind === "skip") {
      if (baseName(r.path).startsWith(`${WH_PREFIX}${WH_PREFIX}`)) {
        warn(`left out '${r.path}': union bookkeeping, not layer content`);
      }
      last.delete(r.path);
    } else if (kind === "node") {
      if (r.type === "CharacterDevice" && r.devmaj === 0 && r.devmin === 0) {
        // A whiteout in overlay form, or a device whose numbers node-tar could not read (it reads them
        // from ustar/pax headers only, not GNU ones): either way not a device to create.
        warn(`left out '${r.path}': a character device 0/0 (overlay whiteout, or unreadable device numbers)`);
        last.delete(r.path);
      } else makeNode(root, r);
    } else if (kind === "whiteout") {
      const hidden = nodePath.posix.join(parentOf(r.path), baseName(r.path).slice(WH_PREFIX.length));
      const abs = safePath(root, hidden, true);
      if (abs === undefined)
        throw new UsageError(
          `cannot import '${file}': '${r.path}' lies below something that is not a directory`,
        );
      const st = lstatOrUndefined(abs);
      if (st === undefined) {
        sys.mknod(abs, S_IFCHR, 0);
        if (isRoot()) fs.lchownSync(abs, r.uid ?? 0, r.gid ?? 0);
        if (r.mtime !== undefined) fs.lutimesSync(abs, r.atime ?? r.mtime, r.mtime);
      } else if (st.isDirectory()) {
        markOpaque(abs);
        summary.opaqueDirs += 1;
      }
      summary.whiteouts += 1;
      last.delete(r.path);
    } else if (kind === "opaque") {
      const dirRel = parentOf(r.path);
      const abs = safePath(root, dirRel, true);
      if (abs === undefined)
        throw new UsageError(
          `cannot import '${file}': '${r.path}' lies below something that is not a directory`,
        );
      const st = lstatOrUndefined(abs);
      if (st === undefined) fs.mkdirSync(abs, { mode: 0o755 });
      if (st === undefined || st.isDirectory()) {
        markOpaque(abs);
        summary.opaqueDirs += 1;
      } else warn(`left out '${r.path}': '${dirRel}' is not a directory`);
      last.delete(r.path);
    } else if (format === "aufs" && baseName(r.path).startsWith(WH_PREFIX)) {
      if (baseName(r.path) === OPAQUE_MARKER) summary.opaqueDirs += 1;
      else summary.whiteouts += 1;
    }
  }
  summary.entries = records.length;

  // Owners, exact permission bits and times; directories after everything else.
  const dirs: Array<[string, EntryRecord]> = [];
  for (const r of last.values()) {
    if (r.type === "Link") continue; // shares the inode of the entry it links to
    const abs = safePath(root, r.path, false);
    const st = abs === undefined ? undefined : lstatOrUndefined(abs);
    if (abs === undefined || st === undefined) continue;
    if (st.isDirectory()) dirs.push([abs, r]);
    else fixAttributes(abs, st, r);
  }
  for (const [abs, r] of dirs.reverse()) {
    const st = lstatOrUndefined(abs);
    if (st?.isDirectory()) fixAttributes(abs, st, r);
  }
  return summary;
}

function markOpaque(abs: string): void {
  sys.lsetxattr(abs, "trusted.overlay.opaque", Buffer.from("y"), 0);
}

function makeNode(root: string, r: EntryRecord): void {
  const abs = safePath(root, r.path, true);
  if (abs === undefined)
    throw new UsageError(`cannot import: '${r.path}' lies below something that is not a directory`);
  const st = lstatOrUndefined(abs);
  if (st?.isDirectory()) fs.rmdirSync(abs);
  else if (st) fs.unlinkSync(abs);
  const rdev = r.type === "FIFO" ? 0 : makedev(r.devmaj, r.devmin);
  sys.mknod(abs, nodeMode(r.type) | ((r.mode ?? 0o644) & 0o7777), rdev);
}

function fixAttributes(abs: string, st: fs.Stats, r: EntryRecord): void {
  if (isRoot() && r.uid !== undefined && r.gid !== undefined && (st.uid !== r.uid || st.gid !== r.gid)) {
    fs.lchownSync(abs, r.uid, r.gid);
  }
  // chmod after chown: chown clears the set-id bits.
  if (!st.isSymbolicLink() && r.mode !== undefined) fs.chmodSync(abs, r.mode & 0o7777);
  if (r.mtime !== undefined) fs.lutimesSync(abs, r.atime ?? r.mtime, r.mtime);
}
