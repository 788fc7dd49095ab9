/**
 * Tar layers: a read-only layer served straight from a tar archive (plain or gzip), never unpacked.
 *
 * Invariants:
 * - The layer shows the tree extracting the archive would make (tree.ts): modes, owners, ns times, device
 *   numbers, symlink targets, xattrs, hard links (one inode, `nlink` names). OCI whiteouts (`.wh.NAME`,
 *   `.wh..wh..opq`) and overlay ones (0/0 character devices, `trusted.overlay.*` xattrs) are shown as
 *   the objects they are, as a directory layer shows its markers; the union reads them as whiteouts.
 * - Inode numbers are node indices + 1 (the root is 1): the same archive gives the same numbers on
 *   every mount. `dev` is synthetic, TAR_DEV + the layer's index, no real device's number.
 * - A path is found by exact name only: nothing is ever resolved through a symlink. A name that is not
 *   there is ENOENT, or ENOTDIR when a parent on its way is not a directory.
 * - Files have no descriptor (`LayerFile.fd` is absent): reads are served from the archive, so the
 *   kernel never passes them through and copy-up copies them by reading.
 * - Nothing is ever written; an open that could change a file is EROFS; no access time ever changes.
 */
import * as fs from "node:fs";
import { fsError } from "../../errors";
import { toText } from "../../sys/bytes";
import { makedev, type Stat } from "../../sys/stat";
import type { Layer, LayerFile, LayerStatFs, RawEntry } from "../types";
import { ArchiveReader } from "./archive";
import { openArchive, type OpenArchive, type OpenOptions } from "./open";
import { S_IFDIR, S_IFLNK, S_IFREG } from "./scan";
import type { TarNode, TarTree } from "./tree";

/** Device numbers of tar layers: this plus the layer's index ("tar" in the top bytes, no real device's). */
export const TAR_DEV = 0x7461_7200_0000_0000n;

const O_ACCMODE = 3;
const BLOCK_SIZE = 4096;
const DIR_SIZE = 4096n;

export interface TarLayerOptions extends OpenOptions {
  /** Position in the union (default -1: not a branch). */
  index?: number;
  /** Whether whiteouts in it hide lower layers (default true). */
  honoursWhiteouts?: boolean;
}

export class TarLayer implements Layer {
  readonly writable = false;
  readonly index: number;
  readonly honoursWhiteouts: boolean;
  readonly dev: bigint;
  /** How the index was had: read from a saved file, or made by scanning the archive. */
  readonly source: OpenArchive["source"];
  private readonly archive: OpenArchive;
  private readonly reader: ArchiveReader;
  private readonly tree: TarTree;
  private readonly blocks: bigint;
  /** Each node's Stat, made on first use (frozen: shared by every caller). */
  private readonly stats: (Stat | undefined)[] = [];
  private closed = false;

  /** `origin` is the archive's absolute byte-string path. Refusals are ArchiveErrors (one line). */
  constructor(
    readonly origin: string,
    opts: TarLayerOptions = {},
  ) {
    this.index = opts.index ?? -1;
    this.honoursWhiteouts = opts.honoursWhiteouts ?? true;
    this.dev = TAR_DEV + BigInt(Math.max(0, this.index));
    this.archive = openArchive(origin, opts);
    this.source = this.archive.source;
    this.reader = new ArchiveReader(this.archive.fd, this.archive);
    this.tree = this.archive.index.tree;
    this.blocks = BigInt(Math.ceil(fs.fstatSync(this.archive.fd).size / BLOCK_SIZE));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.close();
    this.archive.close();
  }

  /** The node of `rel`, or the errno error of a miss (ENOTDIR when a parent is not a directory). */
  private node(rel: string): { node: TarNode; ino: number } {
    if (this.closed) throw fsError("EBADF", `${toText(this.origin)} is closed`);
    const i = this.tree.entries.get(rel);
    if (i !== undefined) return { node: this.tree.node(i), ino: i + 1 };
    for (let at = rel.lastIndexOf("/"); at > 0; at = rel.lastIndexOf("/", at - 1)) {
      const parent = this.tree.entries.get(rel.slice(0, at));
      if (parent === undefined) continue;
      if (this.tree.node(parent).type !== S_IFDIR) throw fsError("ENOTDIR", toText(rel));
      break;
    }
    throw fsError("ENOENT", toText(rel));
  }

  private statOf(n: TarNode, ino: number): Stat {
    return (this.stats[ino] ??= Object.freeze(this.makeStat(n, ino)));
  }

  private makeStat(n: TarNode, ino: number): Stat {
    const size =
      n.type === S_IFDIR ? DIR_SIZE : n.type === S_IFLNK ? BigInt(n.target!.length) : BigInt(n.size);
    return {
      dev: this.dev,
      ino: BigInt(ino),
      mode: BigInt(n.type | n.mode),
      nlink: BigInt(n.nlink),
      uid: BigInt(n.uid),
      gid: BigInt(n.gid),
      rdev: makedev(n.rdevMajor, n.rdevMinor),
      size,
      blksize: BigInt(BLOCK_SIZE),
      blocks: n.type === S_IFREG || n.type === S_IFDIR ? (size + 511n) / 512n : 0n,
      atimeNs: n.atimeNs,
      mtimeNs: n.mtimeNs,
      ctimeNs: n.ctimeNs,
      birthtimeNs: 0n,
    };
  }

  lstat(rel: string): Stat {
    const { node, ino } = this.node(rel);
    return this.statOf(node, ino);
  }

  tryLstat(rel: string): Stat | undefined {
    const i = this.tree.entries.get(rel);
    if (i === undefined || this.closed) return undefined;
    return this.statOf(this.tree.node(i), i + 1);
  }

  readdir(rel: string): RawEntry[] {
    const { node } = this.node(rel);
    if (node.type !== S_IFDIR) throw fsError("ENOTDIR", toText(rel));
    const names = this.tree.children.get(rel) ?? [];
    const prefix = rel === "" ? "/" : `${rel}/`;
    return names.map((name) => ({
      name,
      type: this.tree.node(this.tree.entries.get(prefix + name)!).type,
    }));
  }

  readlink(rel: string): string {
    const { node } = this.node(rel);
    if (node.type !== S_IFLNK) throw fsError("EINVAL", toText(rel));
    return node.target!;
  }

  getxattr(rel: string, name: string): Buffer | undefined {
    const value = this.node(rel).node.xattrs?.get(name);
    return value === undefined ? undefined : Buffer.from(value);
  }

  tryGetxattr(rel: string, name: string): Buffer | undefined {
    return this.getxattr(rel, name);
  }

  listxattr(rel: string): string[] {
    return [...(this.node(rel).node.xattrs?.keys() ?? [])];
  }

  open(rel: string): LayerFile {
    return this.openAccess(rel, fs.constants.O_RDONLY);
  }

  openAccess(rel: string, flags: number): LayerFile {
    if ((flags & O_ACCMODE) !== fs.constants.O_RDONLY || flags & fs.constants.O_TRUNC) {
      throw fsError("EROFS", "layer is read-only");
    }
    const { node, ino } = this.node(rel);
    if (node.type === S_IFDIR) throw fsError("EISDIR", toText(rel));
    if (flags & fs.constants.O_DIRECTORY) throw fsError("ENOTDIR", toText(rel));
    if (node.type === S_IFLNK) throw fsError("ELOOP", toText(rel));
    return new TarFile(this.reader, node, this.statOf(node, ino), () => this.closed);
  }

  statfs(): LayerStatFs {
    const files = BigInt(this.tree.count);
    return { bsize: BLOCK_SIZE, blocks: this.blocks, bfree: 0n, bavail: 0n, files, ffree: 0n };
  }
}

/** A member's data, open for reading. */
class TarFile implements LayerFile {
  private open = true;

  constructor(
    private readonly reader: ArchiveReader,
    private readonly node: TarNode,
    private readonly st: Stat,
    private readonly layerClosed: () => boolean,
  ) {}

  read(length: number, position: bigint): Buffer {
    const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, this.node.size - Number(position))));
    return buf.subarray(0, this.readInto(buf, position));
  }

  readInto(buf: Buffer, position: bigint): number {
    if (!this.open || this.layerClosed()) throw fsError("EBADF", "read of a closed file");
    const pos = Number(position);
    const n = Math.max(0, Math.min(buf.length, this.node.size - pos));
    return this.reader.read(this.node, buf, 0, n, pos);
  }

  fstat(): Stat {
    return this.st;
  }

  close(): void {
    this.open = false;
  }
}
