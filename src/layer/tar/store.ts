/**
 * A saved archive index: a compact binary file, so a later mount of the same archive reads its index
 * instead of scanning (and for gzip, decompressing) the whole archive again.
 *
 *   "UFSTIX01"  u32 header length  header (JSON: key, counts, section offsets)
 *   nodes        N × 80 bytes (type|mode, uid, gid, nlink, rdev, size, offset, 3 times, target, xattrs)
 *   entries      E × 12 bytes (path offset and length in the strings, node)
 *   checkpoints  C × 24 bytes (out, in, bits, member flag, window length; windows follow one another)
 *   strings      paths, symlink targets, xattr names and values
 *   windows      the checkpoints' 32 KiB windows, read on demand
 *
 * Invariants:
 * - The key (archive size, mtime, device, inode and a hash of its first and last 64 KiB) must match the
 *   archive for an index to be used; anything else — another version, a key that differs, a file that
 *   is cut short or malformed — is "no index" (undefined), never an error: the archive is scanned again.
 * - An index is written to a temporary name and renamed into place: a reader never sees half of one.
 * - Loading checks every offset of the index but makes the map of names (path → node) on first use only:
 *   a mount answers before 20,000 names a layer are hashed, and a layer never read never hashes them.
 * - Windows stay in the file (read with pread through the fd `load` returns), so a mount does not hold
 *   32 KiB of memory per MiB of archive.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { endianness } from "node:os";
import { bytesOf } from "../../sys/bytes";
import type { ArchiveIndex, Compression, Indexed } from "./archive";
import type { Checkpoint } from "./gzip";
import { preadFully } from "./stream";
import { treeOf, type TarNode, type TarTree } from "./tree";

const MAGIC = "UFSTIX01";
const VERSION = 1;
const NODE = 80;
const ENTRY = 12;
const CHECKPOINT = 24;
const NONE = 0xffffffff;
const HASHED = 64 * 1024;

/** What identifies one state of an archive. */
export interface ArchiveKey {
  size: number;
  mtimeNs: string;
  dev: string;
  ino: string;
  hash: string;
}

/** The key of the archive open on `fd`. */
export function keyOf(fd: number): ArchiveKey {
  const st = fs.fstatSync(fd, { bigint: true });
  const size = Number(st.size);
  const h = createHash("sha256");
  const buf = Buffer.alloc(Math.min(HASHED, size));
  h.update(buf.subarray(0, preadFully(fd, buf, buf.length, 0)));
  h.update(buf.subarray(0, preadFully(fd, buf, buf.length, Math.max(0, size - buf.length))));
  return {
    size,
    mtimeNs: String(st.mtimeNs),
    dev: String(st.dev),
    ino: String(st.ino),
    hash: h.digest("hex"),
  };
}

function sameKey(a: ArchiveKey, b: ArchiveKey): boolean {
  return (
    a.size === b.size && a.mtimeNs === b.mtimeNs && a.dev === b.dev && a.ino === b.ino && a.hash === b.hash
  );
}

interface Section {
  at: number;
  len: number;
}

interface StoredHeader {
  version: number;
  key: ArchiveKey;
  compression: Compression;
  size?: number;
  nodes: Section;
  entries: Section;
  checkpoints: Section;
  strings: Section;
  windows: Section;
}

/** Appends byte strings and buffers to one blob, handing out offsets. */
class Strings {
  readonly parts: Buffer[] = [];
  length = 0;

  add(b: Buffer): number {
    const at = this.length;
    this.parts.push(b);
    this.length += b.length;
    if (this.length >= NONE) throw new RangeError("index strings exceed 4 GiB");
    return at;
  }

  addText(s: string): number {
    return this.add(Buffer.from(s, "latin1"));
  }
}

function xattrBlob(x: Map<string, Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of x) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(name.length, 0);
    head.writeUInt32LE(value.length, 4);
    parts.push(head, Buffer.from(name, "latin1"), value);
  }
  return Buffer.concat(parts);
}

function writeNode(out: Buffer, at: number, n: TarNode, strings: Strings): void {
  out.writeUInt32LE(n.type | n.mode, at);
  out.writeUInt32LE(n.uid >>> 0, at + 4);
  out.writeUInt32LE(n.gid >>> 0, at + 8);
  out.writeUInt32LE(n.nlink, at + 12);
  out.writeUInt32LE(n.rdevMajor >>> 0, at + 16);
  out.writeUInt32LE(n.rdevMinor >>> 0, at + 20);
  out.writeDoubleLE(n.size, at + 24);
  out.writeDoubleLE(n.offset, at + 32);
  out.writeBigInt64LE(n.mtimeNs, at + 40);
  out.writeBigInt64LE(n.atimeNs, at + 48);
  out.writeBigInt64LE(n.ctimeNs, at + 56);
  const target = n.target === undefined ? undefined : Buffer.from(n.target, "latin1");
  out.writeUInt32LE(target === undefined ? NONE : strings.add(target), at + 64);
  out.writeUInt32LE(target?.length ?? 0, at + 68);
  const xattrs = n.xattrs === undefined ? undefined : xattrBlob(n.xattrs);
  out.writeUInt32LE(xattrs === undefined ? NONE : strings.add(xattrs), at + 72);
  out.writeUInt32LE(xattrs?.length ?? 0, at + 76);
}

/** The bytes of a saved index for the archive with `key`. */
export function serialize({ index, window }: Indexed, key: ArchiveKey): Buffer {
  const { count, entries } = index.tree;
  const strings = new Strings();
  const nodeBuf = Buffer.alloc(count * NODE);
  for (let i = 0; i < count; i++) writeNode(nodeBuf, i * NODE, index.tree.node(i), strings);
  const entryBuf = Buffer.alloc(entries.size * ENTRY);
  let e = 0;
  for (const [p, i] of entries) {
    entryBuf.writeUInt32LE(strings.addText(p), e);
    entryBuf.writeUInt32LE(p.length, e + 4);
    entryBuf.writeUInt32LE(i, e + 8);
    e += ENTRY;
  }
  const cps = index.checkpoints ?? [];
  const cpBuf = Buffer.alloc(cps.length * CHECKPOINT);
  const wins: Buffer[] = [];
  cps.forEach((cp, i) => {
    const w = cp.member ? undefined : window(i);
    if (w !== undefined) wins.push(w);
    cpBuf.writeDoubleLE(cp.out, i * CHECKPOINT);
    cpBuf.writeDoubleLE(cp.in, i * CHECKPOINT + 8);
    cpBuf.writeUInt16LE(cp.bits, i * CHECKPOINT + 16);
    cpBuf.writeUInt16LE(cp.member ? 1 : 0, i * CHECKPOINT + 18);
    cpBuf.writeUInt32LE(w?.length ?? 0, i * CHECKPOINT + 20);
  });
  const stringBuf = Buffer.concat(strings.parts);
  const windowBuf = Buffer.concat(wins);
  const sections = [nodeBuf, entryBuf, cpBuf, stringBuf, windowBuf];
  const header = (base: number): Buffer => {
    const at: Section[] = [];
    let pos = base;
    for (const s of sections) {
      at.push({ at: pos, len: s.length });
      pos += s.length;
    }
    const h: StoredHeader = {
      version: VERSION,
      key,
      compression: index.compression,
      nodes: at[0]!,
      entries: at[1]!,
      checkpoints: at[2]!,
      strings: at[3]!,
      windows: at[4]!,
    };
    if (index.size !== undefined) h.size = index.size;
    return Buffer.from(JSON.stringify(h));
  };
  // The header's length depends on the offsets it holds: pad it to a fixed width.
  const width = header(1e12).length + 16;
  const head = Buffer.alloc(width, 0x20);
  header(MAGIC.length + 4 + width).copy(head);
  const prefix = Buffer.alloc(MAGIC.length + 4);
  prefix.write(MAGIC, 0, "latin1");
  prefix.writeUInt32LE(width, MAGIC.length);
  return Buffer.concat([prefix, head, ...sections]);
}

/**
 * Writes `bytes` at byte-string `path` through a temporary name and a rename, readable by whom the
 * archive (of mode `archiveMode`) is readable by: an index lists the archive's names.
 */
export function writeIndexFile(path: string, bytes: Buffer, archiveMode: number): void {
  const tmp = bytesOf(`${path}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, bytes, { mode: archiveMode & 0o644 });
    fs.chmodSync(tmp, archiveMode & 0o644); // the umask does not decide who may read the names
    fs.renameSync(tmp, bytesOf(path));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** A saved index read back; its windows are read on demand through `fd` (the caller closes it). */
export interface LoadedIndex extends Indexed {
  fd: number;
}

class Malformed extends Error {}

function section(buf: Buffer, s: Section | undefined, end: number): Buffer {
  if (s === undefined || !(s.at >= 0 && s.len >= 0 && s.at + s.len <= end)) throw new Malformed();
  return buf.subarray(s.at, s.at + s.len);
}

/** The index saved at byte-string `path` when it is one for the archive with `key`, else undefined. */
export function loadIndex(path: string, key: ArchiveKey): LoadedIndex | undefined {
  let fd: number;
  try {
    fd = fs.openSync(bytesOf(path), "r");
  } catch {
    return undefined;
  }
  try {
    const loaded = parse(fd, key);
    if (loaded !== undefined) return loaded;
  } catch (err) {
    if (!(err instanceof Malformed || err instanceof RangeError || err instanceof SyntaxError)) {
      fs.closeSync(fd);
      throw err;
    }
  }
  fs.closeSync(fd);
  return undefined;
}

function parse(fd: number, key: ArchiveKey): LoadedIndex | undefined {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) return undefined;
  const size = st.size;
  const prefix = Buffer.alloc(MAGIC.length + 4);
  if (preadFully(fd, prefix, prefix.length, 0) < prefix.length) return undefined;
  if (prefix.toString("latin1", 0, MAGIC.length) !== MAGIC) return undefined;
  const width = prefix.readUInt32LE(MAGIC.length);
  if (width > 1 << 20) return undefined;
  const headBuf = Buffer.alloc(width);
  if (preadFully(fd, headBuf, width, prefix.length) < width) return undefined;
  const h = JSON.parse(headBuf.toString("utf8")) as StoredHeader;
  if (h.version !== VERSION || typeof h.key !== "object" || !sameKey(h.key, key)) return undefined;
  // Everything but the windows is read at once.
  const end = h.windows?.at ?? size;
  if (end > size) return undefined;
  const buf = Buffer.allocUnsafe(end); // every byte is read into, or it is no index
  if (preadFully(fd, buf, end, 0) < end) return undefined;
  const strings = section(buf, h.strings, end);
  const tree = readTree(section(buf, h.nodes, end), section(buf, h.entries, end), strings);
  const index: ArchiveIndex = { compression: h.compression, tree };
  const windows: Section[] = [];
  if (h.compression === "gzip") {
    index.checkpoints = readCheckpoints(section(buf, h.checkpoints, end), h.windows, size, windows);
    index.size = h.size;
  }
  return { index, fd, window: (i) => readWindow(fd, windows[i]) };
}

function readWindow(fd: number, w: Section | undefined): Buffer {
  if (w === undefined) throw new Error("no window for a member checkpoint");
  const buf = Buffer.alloc(w.len);
  if (preadFully(fd, buf, w.len, w.at) < w.len) throw new Error("saved index cut short while mounted");
  return buf;
}

const LITTLE_ENDIAN = endianness() === "LE";

/** `b`'s little-endian 32-bit words: a view where the host and the alignment allow, else a copy. */
function wordsOf(b: Buffer): Uint32Array {
  const n = b.length >>> 2;
  if (LITTLE_ENDIAN && b.byteOffset % 4 === 0) return new Uint32Array(b.buffer, b.byteOffset, n);
  const out = new Uint32Array(n);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(b.subarray(0, n * 4));
  else for (let i = 0; i < n; i++) out[i] = b.readUInt32LE(i * 4);
  return out;
}

/** The tree; nodes are decoded on first use (their bounds are checked here, so that never fails). */
function readTree(nodeBuf: Buffer, entryBuf: Buffer, strings: Buffer): TarTree {
  const count = Math.floor(nodeBuf.length / NODE);
  // Word arrays: the checks below read ~7 words for each of tens of thousands of names.
  const nodeWords = wordsOf(nodeBuf);
  for (let w = 0; w < (count * NODE) / 4; w += NODE / 4) {
    const target = nodeWords[w + 16]!;
    if (target !== NONE && target + nodeWords[w + 17]! > strings.length) throw new Malformed();
    const xattrs = nodeWords[w + 18]!;
    if (xattrs === NONE) continue;
    const end = xattrs + nodeWords[w + 19]!;
    if (end > strings.length) throw new Malformed();
    readXattrs(strings.subarray(xattrs, end));
  }
  // Checked now (a malformed index is no index), made into a map on first use: a mount with a saved
  // index answers before its layers' names are hashed (~0.5 µs each), and a layer never read never is.
  const entryWords = wordsOf(entryBuf);
  let root = false;
  for (let w = 0; w + ENTRY / 4 <= entryWords.length; w += ENTRY / 4) {
    const len = entryWords[w + 1]!;
    const node = entryWords[w + 2]!;
    if (entryWords[w]! + len > strings.length || node >= count) throw new Malformed();
    if (len === 0) root = node === 0;
  }
  if (!root) throw new Malformed();
  const entries = (): Map<string, number> => {
    // One decode of all the strings, then substrings: far cheaper than a decode per path.
    const text = strings.toString("latin1");
    const out = new Map<string, number>();
    for (let w = 0; w + ENTRY / 4 <= entryWords.length; w += ENTRY / 4) {
      const off = entryWords[w]!;
      out.set(text.slice(off, off + entryWords[w + 1]!), entryWords[w + 2]!);
    }
    return out;
  };
  const nodes: (TarNode | undefined)[] = new Array<TarNode | undefined>(count);
  return treeOf(count, (i) => (nodes[i] ??= readNode(nodeBuf, i * NODE, strings)), entries);
}

function slice(strings: Buffer, off: number, len: number): Buffer | undefined {
  return off === NONE ? undefined : strings.subarray(off, off + len);
}

function readNode(b: Buffer, at: number, strings: Buffer): TarNode {
  const typeMode = b.readUInt32LE(at);
  const n: TarNode = {
    type: typeMode & 0o170000,
    mode: typeMode & 0o7777,
    uid: b.readUInt32LE(at + 4),
    gid: b.readUInt32LE(at + 8),
    nlink: b.readUInt32LE(at + 12),
    rdevMajor: b.readUInt32LE(at + 16),
    rdevMinor: b.readUInt32LE(at + 20),
    size: b.readDoubleLE(at + 24),
    offset: b.readDoubleLE(at + 32),
    mtimeNs: b.readBigInt64LE(at + 40),
    atimeNs: b.readBigInt64LE(at + 48),
    ctimeNs: b.readBigInt64LE(at + 56),
  };
  const target = slice(strings, b.readUInt32LE(at + 64), b.readUInt32LE(at + 68));
  if (target !== undefined) n.target = target.toString("latin1");
  const xattrs = slice(strings, b.readUInt32LE(at + 72), b.readUInt32LE(at + 76));
  if (xattrs !== undefined) n.xattrs = readXattrs(xattrs);
  return n;
}

function readXattrs(b: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let at = 0; at < b.length;) {
    if (at + 8 > b.length) throw new Malformed();
    const nameLen = b.readUInt32LE(at);
    const valueLen = b.readUInt32LE(at + 4);
    at += 8;
    if (at + nameLen + valueLen > b.length) throw new Malformed();
    out.set(
      b.toString("latin1", at, at + nameLen),
      Buffer.from(b.subarray(at + nameLen, at + nameLen + valueLen)),
    );
    at += nameLen + valueLen;
  }
  return out;
}

/** The checkpoints; `windows[i]` is where window i lies in the file (windows follow one another). */
function readCheckpoints(
  b: Buffer,
  section: Section | undefined,
  size: number,
  windows: Section[],
): Checkpoint[] {
  if (section === undefined || section.at + section.len > size) throw new Malformed();
  const out: Checkpoint[] = [];
  let w = section.at;
  for (let at = 0; at + CHECKPOINT <= b.length; at += CHECKPOINT) {
    const member = b.readUInt16LE(at + 18) === 1;
    const cp: Checkpoint = {
      out: b.readDoubleLE(at),
      in: b.readDoubleLE(at + 8),
      bits: b.readUInt16LE(at + 16),
      member,
    };
    const len = b.readUInt32LE(at + 20);
    windows.push({ at: w, len });
    w += len;
    out.push(cp);
  }
  if (w > section.at + section.len) throw new Malformed();
  return out;
}
