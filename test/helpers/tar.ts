/**
 * Crafted tar archives for tests: exact header blocks (ustar or GNU magic, PAX records, GNU long names),
 * so a test can make any member, including the ones a well-behaved tar program never writes (escaping
 * paths, bad checksums, sparse markers).
 *
 *   tarBytes([{ name: "a/b", data: "x" }, { name: "l", type: "2", linkname: "a/b" }])
 *
 * Names are byte strings given as Buffers or as text (UTF-8). Every archive ends with two zero blocks
 * unless `end: false`.
 */
import * as fs from "node:fs";
import * as zlib from "node:zlib";
import type { ArchiveIndex } from "../../src/layer/tar/archive";
import type { TarNode, TarTree } from "../../src/layer/tar/tree";

export interface TarEntry {
  name: string | Buffer;
  /** Type flag: "0" file (default), "1" hard link, "2" symlink, "3" char, "4" block, "5" dir, "6" fifo … */
  type?: string;
  data?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string | Buffer;
  devmajor?: number;
  devminor?: number;
  /** PAX records written in an 'x' header before the member. */
  pax?: Record<string, string | Buffer>;
  /** Write the name (and link name) as GNU 'L'/'K' long-name members instead of truncating. */
  gnuLong?: boolean;
  gnu?: boolean;
  /** Size field to write when it should differ from the data's length. */
  size?: number;
  /** Write the size field in base-256 (GNU). */
  base256Size?: boolean;
}

const BLOCK = 512;

function bytes(s: string | Buffer): Buffer {
  return typeof s === "string" ? Buffer.from(s, "utf8") : s;
}

function octal(buf: Buffer, at: number, len: number, n: number): void {
  buf.write(n.toString(8).padStart(len - 1, "0") + "\0", at, len, "latin1");
}

function base256(buf: Buffer, at: number, len: number, n: number): void {
  let v = BigInt(n);
  for (let i = len - 1; i > 0; i--) {
    buf[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[at] = 0x80;
}

/** One header block with a valid checksum. */
export function headerBlock(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  bytes(e.name).copy(h, 0, 0, 100);
  octal(h, 100, 8, e.mode ?? (e.type === "5" ? 0o755 : 0o644));
  octal(h, 108, 8, e.uid ?? 0);
  octal(h, 116, 8, e.gid ?? 0);
  if (e.base256Size) base256(h, 124, 12, size);
  else octal(h, 124, 12, size);
  octal(h, 136, 12, e.mtime ?? 1_600_000_000);
  h.write(e.type ?? "0", 156, 1, "latin1");
  if (e.linkname !== undefined) bytes(e.linkname).copy(h, 157, 0, 100);
  if (e.gnu) h.write("ustar  \0", 257, 8, "latin1");
  else h.write("ustar\x0000", 257, 8, "latin1");
  octal(h, 329, 8, e.devmajor ?? 0);
  octal(h, 337, 8, e.devminor ?? 0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return h;
}

function padded(data: Buffer): Buffer {
  const out = Buffer.alloc(Math.ceil(data.length / BLOCK) * BLOCK);
  data.copy(out);
  return out;
}

/** One PAX record, its length field counting itself. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), bytes(value), Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function meta(type: string, name: string, data: Buffer): Buffer[] {
  return [headerBlock({ name, type }, data.length), padded(data)];
}

/** The blocks of one member (and the metadata members before it). */
export function memberBlocks(e: TarEntry): Buffer[] {
  const data = bytes(e.data ?? "");
  const out: Buffer[] = [];
  if (e.pax !== undefined) {
    const records = Buffer.concat(Object.entries(e.pax).map(([k, v]) => paxRecord(k, v)));
    out.push(...meta("x", "PaxHeader", records));
  }
  if (e.gnuLong) {
    out.push(...meta("L", "././@LongLink", Buffer.concat([bytes(e.name), Buffer.alloc(1)])));
    if (e.linkname !== undefined) {
      out.push(...meta("K", "././@LongLink", Buffer.concat([bytes(e.linkname), Buffer.alloc(1)])));
    }
  }
  out.push(headerBlock({ ...e, gnu: e.gnu ?? e.gnuLong }, e.size ?? data.length), padded(data));
  return out;
}

/** A whole archive. */
export function tarBytes(entries: TarEntry[], opts: { end?: boolean } = {}): Buffer {
  const blocks = entries.flatMap(memberBlocks);
  if (opts.end ?? true) blocks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(blocks);
}

/** Writes the archive of `entries` at `file`, gzipped when `gzip`; returns `file`. */
export function writeArchive(file: string, entries: TarEntry[], gzip = false): string {
  const raw = tarBytes(entries);
  fs.writeFileSync(file, gzip ? zlib.gzipSync(raw) : raw);
  return file;
}

/** A tree's contents as plain data (its nodes decoded), for deepEqual. */
export function plainTree(tree: TarTree): {
  nodes: TarNode[];
  entries: Map<string, number>;
  children: Map<string, string[]>;
} {
  const nodes = Array.from({ length: tree.count }, (_v, i) => tree.node(i));
  return { nodes, entries: new Map(tree.entries), children: new Map(tree.children) };
}

/** An index as plain data (see `plainTree`). */
export function plainIndex(index: ArchiveIndex): object {
  return { ...index, tree: plainTree(index.tree) };
}
