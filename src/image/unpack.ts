/**
 * Unpacking one layer's tar entries into a directory, as they are read: the work `import` does once
 * the input is open (import.ts).
 *
 * Invariants:
 * - A symlink's target is data: stored byte for byte (absolute, `..`, dangling, anything), never
 *   followed. Nothing is ever created through a symlink: every directory on the way to an entry is
 *   checked to be a real directory (`safePath`), and files are created with O_EXCL|O_NOFOLLOW.
 * - An entry whose own path is absolute or has a `..` component, or a hard link whose first name does,
 *   is refused (UsageError), as is an entry below a symlink or a non-directory, and a member that shows
 *   the archive is a whole image (image-archive.ts). The caller removes what was unpacked.
 * - Format `aufs` (default: OCI whiteouts are aufs's) keeps `.wh.<name>` and `.wh..wh..opq` entries as
 *   the files they are; another format (src/whiteout) writes them its way through the target as a
 *   writable layer, e.g. `overlay`: 0/0 character devices and `trusted.overlay.opaque=y` (a whiteout of
 *   a name the same layer also provides as a directory makes that directory opaque instead); without
 *   CAP_SYS_ADMIN in the initial user namespace the marker is `user.overlay.opaque=y`, which rootless
 *   kernel overlayfs reads (`userxattr`). Other `.wh..wh.*` entries (aufs bookkeeping, a union's work
 *   dir) are left out with a warning.
 * - A later entry for a path replaces the earlier one, as tar does. `finish()` then gives every entry
 *   the archive's owner (when running as root), its extended attributes that are layer content
 *   (`xattrs.ts`; others are left out, with one warning per attribute name), exact permission bits and
 *   times, directories last and deepest first, in that order (chown clears capabilities and set-id
 *   bits, so they come after it).
 */
import * as fs from "node:fs";
import { codeOf, UsageError } from "../errors";
import { openWritableDir, type WritableLayer } from "../layer";
import { bytesOf, fromText } from "../sys/bytes";
import * as sys from "../sys/libc";
import { privateXattrNamespace } from "../sys/xattrns";
import {
  OPAQUE_MARKER,
  WH_PREFIX,
  whiteoutWriter,
  type WhiteoutFormat,
  type WhiteoutWriter,
} from "../whiteout";
import { ImageArchiveSniffer } from "./image-archive";
import type { Progress } from "./progress";
import type { TarEntry } from "./tar-read";
import { S_IFBLK, S_IFCHR, S_IFIFO, showPath } from "./walk";
import { isLayerXattr } from "./xattrs";

/** The whiteout format an import writes: one of src/whiteout's (the library's name for it). */
export type ImportFormat = WhiteoutFormat;

export interface UnpackOptions {
  format?: ImportFormat;
  /** Called with one line of text for each entry or attribute left out. */
  onWarning?: (message: string) => void;
  /** Told of every entry unpacked (and, by the importer, of every byte of input read). */
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

const isRoot = (): boolean => process.getuid?.() === 0;

/** One import: extraction as entries arrive, then whiteouts and attributes. */
export class Unpacker {
  /** The last record of each path, in archive order. */
  private readonly records = new Map<string, EntryRecord>();
  private readonly sniffer = new ImageArchiveSniffer();
  /** How the archive's whiteouts are written; undefined: kept as they are (aufs). */
  private readonly translate: WhiteoutWriter | undefined;
  private readonly warn: (message: string) => void;
  private readonly summary: ImportSummary = { entries: 0, whiteouts: 0, opaqueDirs: 0 };
  /** Attributes left out or not settable: "name (why)" → count. */
  private readonly xattrTrouble = new Map<string, number>();

  constructor(
    /** Byte string: the real path of the target directory. */
    private readonly root: string,
    private readonly name: string,
    private readonly opts: UnpackOptions,
  ) {
    const format = opts.format ?? "aufs";
    this.translate = format === "aufs" ? undefined : whiteoutWriter(format, privateXattrNamespace());
    this.warn = opts.onWarning ?? (() => undefined);
  }

  /** Entries seen so far. */
  get count(): number {
    return this.summary.entries;
  }

  private fail(message: string): never {
    throw new UsageError(`cannot import ${this.name}: ${message}`);
  }

  private kindOf(rel: string, type: TarEntry["type"]): Kind {
    if (rel.split("/").some((c) => c.startsWith(`${WH_PREFIX}${WH_PREFIX}`) && c !== OPAQUE_MARKER))
      return "skip";
    if (this.translate !== undefined && type === "File" && baseName(rel) === OPAQUE_MARKER) return "opaque";
    if (this.translate !== undefined && type === "File" && baseName(rel).startsWith(WH_PREFIX))
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

  /** Whiteouts and opaque markers of another format, then owners, attributes, modes and times. */
  finish(): ImportSummary {
    if (this.translate !== undefined) this.translateWhiteouts(this.translate);
    else {
      for (const r of this.records.values()) {
        if (r.type === "File" && baseName(r.path).startsWith(WH_PREFIX)) {
          if (baseName(r.path) === OPAQUE_MARKER) this.summary.opaqueDirs += 1;
          else this.summary.whiteouts += 1;
        }
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

  /** Writes the archive's whiteouts and opaque markers with `writer`, into the target as a layer. */
  private translateWhiteouts(writer: WhiteoutWriter): void {
    const layer = openWritableDir(this.root);
    try {
      for (const r of [...this.records.values()]) {
        if (r.kind === "whiteout") this.whiteout(writer, layer, r);
        else if (r.kind === "opaque") this.opaque(writer, layer, r);
      }
    } finally {
      layer.close();
    }
  }

  private whiteout(writer: WhiteoutWriter, layer: WritableLayer, r: EntryRecord): void {
    const dir = parentOf(r.path);
    const name = baseName(r.path).slice(WH_PREFIX.length);
    const hidden = `${dir === "" ? "" : `${dir}/`}${name}`;
    const abs = this.safePath(hidden, true, r.path);
    const st = lstatOrUndefined(abs);
    if (st === undefined) {
      const marker = writer.whiteOut(layer, dir === "" ? "" : `/${dir}`, name);
      const markerPath = bytesOf(`${abs.slice(0, abs.lastIndexOf("/"))}/${marker}`);
      if (isRoot()) fs.lchownSync(markerPath, r.uid, r.gid);
      fs.lutimesSync(markerPath, r.atime ?? r.mtime, r.mtime);
    } else if (st.isDirectory()) {
      writer.makeOpaque(layer, `/${hidden}`);
      this.summary.opaqueDirs += 1;
    }
    this.summary.whiteouts += 1;
  }

  private opaque(writer: WhiteoutWriter, layer: WritableLayer, r: EntryRecord): void {
    const dirRel = parentOf(r.path);
    const abs = this.safePath(dirRel, true, r.path);
    const st = lstatOrUndefined(abs);
    if (st === undefined) fs.mkdirSync(bytesOf(abs), { mode: 0o755 });
    if (st === undefined || st.isDirectory()) {
      writer.makeOpaque(layer, dirRel === "" ? "" : `/${dirRel}`);
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
