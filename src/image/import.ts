/**
 * `import`: unpack an OCI layer tarball (plain, gzip or zstd; from a file or a pipe) into a new or empty
 * directory, ready to be used as a branch.
 *
 * Invariants:
 * - The archive is read once, front to back (`archive-input.ts`, `tar-read.ts`), and unpacked as it is
 *   read. Any failure (not a tar, damaged, an entry whose own path is absolute or has a `..` component,
 *   a hard link whose first name is, an entry below a symlink or a non-directory, a whole image archive
 *   instead of a layer, a disk error) is one line, and everything unpacked is removed again (the
 *   directory itself too when it did not exist before): nothing is left half-imported.
 * - A symlink's target is data: stored byte for byte (absolute, `..`, dangling, anything), never
 *   followed. Nothing is ever created through a symlink: every directory on the way to an entry is
 *   checked to be a real directory (`safePath`), and files are created with O_EXCL|O_NOFOLLOW.
 * - Format `aufs` (default) keeps `.wh.<name>` and `.wh..wh..opq` entries as the files they are; format
 *   `overlay` turns them into 0/0 character devices and `trusted.overlay.opaque=y` (a whiteout of a name
 *   the same layer also provides as a directory makes that directory opaque instead). Other `.wh..wh.*`
 *   entries (aufs bookkeeping, a union's work dir) are left out with a warning.
 * - A later entry for a path replaces the earlier one, as tar does. Afterwards every entry gets the
 *   archive's owner (when running as root), extended attributes that are layer content (`xattrs.ts`;
 *   others are left out with a warning), exact permission bits and times, directories last and deepest
 *   first, in that order (chown clears capabilities and set-id bits, so they come after it).
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import type { Readable } from "node:stream";
import { codeOf } from "../errors";
import { bytesOf, fromText } from "../sys/bytes";
import * as sys from "../sys/libc";
import { UsageError } from "../unionfs/branches";
import { OPAQUE_MARKER, WH_PREFIX } from "../whiteout";
import { ArchiveError, archiveFromStream, openArchive, type ArchiveInput } from "./archive-input";
import { ImageArchiveSniffer, imageDirectoryKind } from "./image-archive";
import type { Progress } from "./progress";
import { readTar, TarFormatError, type TarEntry } from "./tar-read";
import { S_IFBLK, S_IFCHR, S_IFIFO, showPath } from "./walk";
import { isLayerXattr } from "./xattrs";

export type ImportFormat = "aufs" | "overlay";

export interface ImportOptions {
  format?: ImportFormat;
  /** Called with one line of text for each entry or attribute left out. */
  onWarning?: (message: string) => void;
  /** Told of every byte of the input read (compressed bytes when compressed) and every entry. */
  progress?: Progress;
}

export interface ImportSummary {
  entries: number;
  whiteouts: number;
  opaqueDirs: number;
}

/** What the unpacking keeps of one entry for the passes after it. */
interface EntryRecord {
  /** Byte string, normalised: "a/b"; "" is the target directory itself. */
  path: string;
  type: TarEntry["type"];
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  atime: number | undefined;
  xattrs: Map<string, Buffer>;
  kind: Kind;
}

/** How an entry is handled: extracted as is, or one of the special cases. */
type Kind = "plain" | "whiteout" | "opaque" | "skip";

/** The archive's name for an entry, normalised: "./a//b/./c/" → "a/b/c", "./" → "". */
export function normaliseEntryPath(p: string): string {
  return p
    .split("/")
    .filter((c) => c !== "" && c !== ".")
    .join("/");
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

/** Linux `makedev`: the dev_t of a major/minor pair, as glibc encodes it. */
export function makedev(major: number, minor: number): number {
  const low = ((major & 0xfff) << 8) | (minor & 0xff);
  return low + Math.floor(minor / 0x100) * 2 ** 20 + Math.floor(major / 0x1000) * 2 ** 44;
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(bytesOf(p));
  } catch (err) {
    if (codeOf(err) === "ENOENT") return undefined;
    throw err;
  }
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

const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Unpacks the layer archive `file` ("-": standard input) into `dir` (UTF-8 text paths). Throws
 * UsageError for bad input, with nothing left behind.
 */
export async function importLayer(
  file: string,
  dir: string,
  opts: ImportOptions = {},
): Promise<ImportSummary> {
  if (file !== "-") {
    const kind = fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()
      ? imageDirectoryKind(file)
      : undefined;
    if (kind !== undefined)
      throw new UsageError(`'${file}' is ${kind}, not a layer: use \`unionfs-ts load\``);
  }
  const target = nodePath.resolve(dir);
  prepareTargetCheckOnly(target);
  let input: ArchiveInput;
  try {
    input = await openArchive(file, (n) => opts.progress?.add(n));
  } catch (err) {
    throw err instanceof ArchiveError ? new UsageError(err.message) : err;
  }
  if (opts.progress && input.size !== undefined) opts.progress.total = input.size;
  return importInput(input, target, opts);
}

/**
 * Unpacks the layer archive read from `stream` (plain, gzip or zstd) into `dir`; `name` says what it
 * is in messages, `size` (bytes, when known) is for progress. For callers that hold a stream, such as a
 * layer blob inside an image archive.
 */
export async function importLayerStream(
  stream: Readable,
  dir: string,
  opts: ImportOptions & { name: string; size?: number },
): Promise<ImportSummary> {
  const target = nodePath.resolve(dir);
  prepareTargetCheckOnly(target);
  let input: ArchiveInput;
  try {
    input = await archiveFromStream(opts.name, stream, opts.size, (n) => opts.progress?.add(n));
  } catch (err) {
    throw err instanceof ArchiveError ? new UsageError(err.message) : err;
  }
  if (opts.progress && opts.size !== undefined) opts.progress.total = opts.size;
  return importInput(input, target, opts);
}

/** The checks of `prepareTarget` that change nothing, so a bad target is refused before any reading. */
function prepareTargetCheckOnly(target: string): void {
  const st = fs.lstatSync(target, { throwIfNoEntry: false });
  if (st === undefined) {
    if (!fs.existsSync(nodePath.dirname(target))) {
      throw new UsageError(`the parent of target '${target}' does not exist`);
    }
    return;
  }
  if (!st.isDirectory()) throw new UsageError(`target '${target}' exists and is not a directory`);
  if (fs.readdirSync(target).length > 0) throw new UsageError(`target directory '${target}' is not empty`);
}

async function importInput(input: ArchiveInput, target: string, opts: ImportOptions): Promise<ImportSummary> {
  let created: boolean;
  try {
    created = prepareTarget(target);
  } catch (err) {
    input.close();
    throw err;
  }
  const unpacker = new Unpacker(fromText(fs.realpathSync(target)), input.name, opts);
  try {
    await readTar(input.chunks, (entry, data) => unpacker.entry(entry, data));
    return unpacker.finish();
  } catch (err) {
    input.close();
    if (created) fs.rmSync(target, { recursive: true, force: true });
    else
      for (const name of fs.readdirSync(target))
        fs.rmSync(nodePath.join(target, name), { recursive: true, force: true });
    if (err instanceof TarFormatError) {
      throw new UsageError(
        unpacker.count === 0
          ? `${input.name} is not a tar archive (${err.message})`
          : `${input.name} is a damaged tar archive (${err.message})`,
      );
    }
    throw err instanceof ArchiveError ? new UsageError(err.message) : err;
  }
}

/** One import: extraction as entries arrive, then whiteouts and attributes. */
class Unpacker {
  /** The last record of each path, in archive order. */
  private readonly records = new Map<string, EntryRecord>();
  private readonly sniffer = new ImageArchiveSniffer();
  private readonly format: ImportFormat;
  private readonly warn: (message: string) => void;
  private readonly summary: ImportSummary = { entries: 0, whiteouts: 0, opaqueDirs: 0 };
  /** Attributes left out or not settable: "name (why)" → count. */
  private readonly xattrTrouble = new Map<string, number>();
  count = 0;

  constructor(
    /** Byte string: the real path of the target directory. */
    private readonly root: string,
    private readonly name: string,
    private readonly opts: ImportOptions,
  ) {
    this.format = opts.format ?? "aufs";
    this.warn = opts.onWarning ?? (() => undefined);
  }

  private fail(message: string): never {
    throw new UsageError(`cannot import ${this.name}: ${message}`);
  }

  private kindOf(rel: string, type: TarEntry["type"]): Kind {
    if (rel.split("/").some((c) => c.startsWith(`${WH_PREFIX}${WH_PREFIX}`) && c !== OPAQUE_MARKER))
      return "skip";
    if (this.format === "overlay" && type === "File" && baseName(rel) === OPAQUE_MARKER) return "opaque";
    if (this.format === "overlay" && type === "File" && baseName(rel).startsWith(WH_PREFIX))
      return "whiteout";
    return "plain";
  }

  /**
   * Absolute byte-string path of `rel` below the root, provided every directory on the way is a real
   * directory (never a symlink); missing ones are made (mode 0755) when `create`. Fails otherwise.
   */
  private safePath(rel: string, create: boolean, what = rel): string {
    if (rel === "") return this.root;
    const parts = rel.split("/");
    const name = parts.pop() as string;
    let cur = this.root;
    let curRel = "";
    for (const part of parts) {
      cur = `${cur}/${part}`;
      curRel = curRel === "" ? part : `${curRel}/${part}`;
      const st = lstatOrUndefined(cur);
      if (st === undefined && create) fs.mkdirSync(bytesOf(cur), { mode: 0o755 });
      else if (st === undefined)
        this.fail(`'${showPath(what)}' lies below '${showPath(curRel)}', which is missing`);
      else if (st.isSymbolicLink())
        this.fail(`'${showPath(what)}' lies below '${showPath(curRel)}', which is a symbolic link`);
      else if (!st.isDirectory())
        this.fail(`'${showPath(what)}' lies below '${showPath(curRel)}', which is not a directory`);
    }
    return `${cur}/${name}`;
  }

  async entry(e: TarEntry, data: AsyncIterable<Buffer>): Promise<void> {
    this.count += 1;
    this.summary.entries += 1;
    const why = unsafeEntryPath(e.path);
    if (why !== undefined)
      throw new UsageError(`refusing to import ${this.name}: layer entry '${showPath(e.path)}' ${why}`);
    const rel = normaliseEntryPath(e.path);
    const image = this.sniffer.see(rel, e.type === "File");
    if (image !== undefined)
      throw new UsageError(`${this.name} is ${image}, not a layer: use \`unionfs-ts load\``);
    if (e.type === "Link") {
      const linkWhy = unsafeEntryPath(e.linkpath);
      if (linkWhy !== undefined) {
        throw new UsageError(
          `refusing to import ${this.name}: layer entry '${showPath(e.path)}' is a hard link to '${showPath(e.linkpath)}', which ${linkWhy}`,
        );
      }
    }
    const kind = this.kindOf(rel, e.type);
    if (kind === "plain") await this.extract(rel, e, data);
    else if (kind === "skip" && baseName(rel).startsWith(`${WH_PREFIX}${WH_PREFIX}`)) {
      this.warn(`left out '${showPath(rel)}': union bookkeeping, not layer content`);
    }
    if (kind !== "skip") {
      this.records.delete(rel);
      const { mode, uid, gid, mtime, atime, xattrs, type } = e;
      this.records.set(rel, { path: rel, type, mode, uid, gid, mtime, atime, xattrs, kind });
    }
    this.opts.progress?.add(0, 1);
  }

  /** Removes whatever is at `abs` unless it is a directory and `keepDir`. */
  private clear(abs: string, keepDir: boolean): void {
    const st = lstatOrUndefined(abs);
    if (st === undefined || (keepDir && st.isDirectory())) return;
    if (st.isDirectory()) fs.rmSync(bytesOf(abs), { recursive: true, force: true });
    else fs.unlinkSync(bytesOf(abs));
  }

  private async extract(rel: string, e: TarEntry, data: AsyncIterable<Buffer>): Promise<void> {
    if (rel === "") {
      if (e.type !== "Directory")
        this.warn(`left out an entry for the layer root itself that is not a directory`);
      return;
    }
    const abs = this.safePath(rel, true);
    this.clear(abs, e.type === "Directory");
    switch (e.type) {
      case "Directory":
        if (lstatOrUndefined(abs) === undefined) fs.mkdirSync(bytesOf(abs), { mode: 0o700 });
        return;
      case "File":
        return writeFile(abs, data);
      case "SymbolicLink":
        return fs.symlinkSync(bytesOf(e.linkpath), bytesOf(abs));
      case "Link":
        return this.hardLink(rel, abs, normaliseEntryPath(e.linkpath));
      case "CharacterDevice":
      case "BlockDevice":
      case "FIFO":
        return this.makeNode(rel, abs, e);
      default:
        this.warn(`left out '${showPath(rel)}': unsupported entry type '${e.typeflag}'`);
    }
  }

  private hardLink(rel: string, abs: string, targetRel: string): void {
    const target = this.safePath(targetRel, false, rel);
    const st = lstatOrUndefined(target);
    if (st === undefined || st.isDirectory()) {
      this.fail(
        `'${showPath(rel)}' is a hard link to '${showPath(targetRel)}', which is not a file the archive holds before it`,
      );
    }
    fs.linkSync(bytesOf(target), bytesOf(abs));
  }

  private makeNode(rel: string, abs: string, e: TarEntry): void {
    if (e.type === "CharacterDevice" && e.devmajor === 0 && e.devminor === 0) {
      // An overlay-format whiteout in a tarball is not a device to create (nor an OCI whiteout).
      this.warn(`left out '${showPath(rel)}': a character device 0/0 (an overlay whiteout)`);
      return;
    }
    const type = e.type === "CharacterDevice" ? S_IFCHR : e.type === "BlockDevice" ? S_IFBLK : S_IFIFO;
    sys.mknod(abs, type | e.mode, e.type === "FIFO" ? 0 : makedev(e.devmajor, e.devminor));
  }

  /** Whiteouts and opaque markers of the overlay format, then owners, attributes, modes and times. */
  finish(): ImportSummary {
    for (const r of [...this.records.values()]) {
      if (r.kind === "whiteout") this.whiteout(r);
      else if (r.kind === "opaque") this.opaque(r);
      else if (this.format === "aufs" && r.type === "File" && baseName(r.path).startsWith(WH_PREFIX)) {
        if (baseName(r.path) === OPAQUE_MARKER) this.summary.opaqueDirs += 1;
        else this.summary.whiteouts += 1;
      }
    }
    const dirs: Array<[string, EntryRecord]> = [];
    for (const r of this.records.values()) {
      if (r.type === "Link" || r.kind !== "plain") continue; // a link shares the inode of its first name
      const abs = r.path === "" ? this.root : this.safePath(r.path, false);
      const st = lstatOrUndefined(abs);
      if (st === undefined) continue; // left out, or replaced by a later entry of another type
      if (st.isDirectory()) dirs.push([abs, r]);
      else this.fixAttributes(abs, st, r);
    }
    for (const [abs, r] of dirs.reverse()) {
      const st = lstatOrUndefined(abs);
      if (st?.isDirectory()) this.fixAttributes(abs, st, r);
    }
    for (const [what, n] of this.xattrTrouble) {
      this.warn(`extended attribute ${what} on ${n} ${n === 1 ? "entry" : "entries"}`);
    }
    return this.summary;
  }

  private whiteout(r: EntryRecord): void {
    const hidden = `${parentOf(r.path) === "" ? "" : `${parentOf(r.path)}/`}${baseName(r.path).slice(WH_PREFIX.length)}`;
    const abs = this.safePath(hidden, true, r.path);
    const st = lstatOrUndefined(abs);
    if (st === undefined) {
      sys.mknod(abs, S_IFCHR, 0);
      if (isRoot()) fs.lchownSync(bytesOf(abs), r.uid, r.gid);
      fs.lutimesSync(bytesOf(abs), r.atime ?? r.mtime, r.mtime);
    } else if (st.isDirectory()) {
      markOpaque(abs);
      this.summary.opaqueDirs += 1;
    }
    this.summary.whiteouts += 1;
  }

  private opaque(r: EntryRecord): void {
    const dirRel = parentOf(r.path);
    const abs = this.safePath(dirRel, true, r.path);
    const st = lstatOrUndefined(abs);
    if (st === undefined) fs.mkdirSync(bytesOf(abs), { mode: 0o755 });
    if (st === undefined || st.isDirectory()) {
      markOpaque(abs);
      this.summary.opaqueDirs += 1;
    } else this.warn(`left out '${showPath(r.path)}': '${showPath(dirRel)}' is not a directory`);
  }

  private fixAttributes(abs: string, st: fs.Stats, r: EntryRecord): void {
    const path = bytesOf(abs);
    if (isRoot() && (st.uid !== r.uid || st.gid !== r.gid)) fs.lchownSync(path, r.uid, r.gid);
    for (const [name, value] of r.xattrs) this.setXattr(abs, name, value);
    // chmod after chown: chown clears the set-id bits.
    if (!st.isSymbolicLink()) fs.chmodSync(path, r.mode & 0o7777);
    fs.lutimesSync(path, r.atime ?? r.mtime, r.mtime);
  }

  private setXattr(abs: string, name: string, value: Buffer): void {
    let trouble: string | undefined;
    if (!isLayerXattr(name)) trouble = `${name} left out (not layer content)`;
    else {
      try {
        sys.lsetxattr(abs, fromText(name), value, 0);
      } catch (err) {
        const code = codeOf(err);
        if (
          code !== "EPERM" &&
          code !== "EACCES" &&
          code !== "EOPNOTSUPP" &&
          code !== "ENOTSUP" &&
          code !== "EINVAL"
        )
          throw err;
        trouble = `${name} could not be set (${code})`;
      }
    }
    if (trouble !== undefined) this.xattrTrouble.set(trouble, (this.xattrTrouble.get(trouble) ?? 0) + 1);
  }
}

function markOpaque(abs: string): void {
  sys.lsetxattr(abs, "trusted.overlay.opaque", Buffer.from("y"), 0);
}

/** Creates the file `abs` (which must not exist) with the entry's data. */
async function writeFile(abs: string, data: AsyncIterable<Buffer>): Promise<void> {
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const fd = fs.openSync(bytesOf(abs), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    for await (const chunk of data) {
      for (let off = 0; off < chunk.length;) off += fs.writeSync(fd, chunk, off);
    }
  } finally {
    fs.closeSync(fd);
  }
}
