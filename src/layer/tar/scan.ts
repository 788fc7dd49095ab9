/**
 * One pass over a tar stream: every member as the archive describes it, with GNU long names and links
 * and PAX records applied, its path normalized, and the offset of its data in the uncompressed stream.
 *
 * Invariants:
 * - Paths are layer-relative byte strings ("" for the root, "/a/b" below it): "." components and
 *   repeated or trailing slashes are dropped. A path that is absolute or has a ".." component is
 *   refused (ArchiveError), for members and hard-link targets alike; symlink targets are kept byte for
 *   byte, never interpreted.
 * - What the scanner cannot represent faithfully is refused, never guessed: sparse members (GNU 'S',
 *   PAX GNU.sparse.*), multi-volume continuations, a truncated stream, a bad checksum.
 * - Members are returned in archive order; repeated paths, hard links and implicit parents are the
 *   tree's business (tree.ts).
 */
import * as fs from "node:fs";
import {
  ArchiveError,
  BLOCK,
  isZeroBlock,
  looksLikeHeader,
  parseHeader,
  parsePax,
  paxNumber,
  paxTimeNs,
  showName,
  type Header,
} from "./header";
import type { TarStream } from "./stream";

export const { S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK, S_IFIFO } = fs.constants;

/** What a member says of the object it makes (a hard link says it of the member it links to). */
export interface Attrs {
  /** S_IFMT bits. */
  type: number;
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Offset of the first data byte in the uncompressed stream. */
  offset: number;
  mtimeNs: bigint;
  atimeNs: bigint;
  ctimeNs: bigint;
  rdevMajor: number;
  rdevMinor: number;
  /** Symlink target (byte string). */
  target?: string;
  /** Extended attributes (PAX SCHILY.xattr.* and LIBARCHIVE.xattr.*), names as byte strings. */
  xattrs?: Map<string, Buffer>;
}

/** One member: its normalized path, and for a hard link the normalized path of the member it links to. */
export interface Member extends Attrs {
  path: string;
  hardlink?: string;
}

/** Longest PAX header or GNU long name accepted. */
const MAX_META = 1024 * 1024;

/** Normalizes a member path (see the invariants); `what` names it in the refusal. */
export function normalizePath(raw: string, what = "member"): string {
  if (raw.startsWith("/")) throw new ArchiveError(`${what} '${showName(raw)}' has an absolute path`);
  const parts: string[] = [];
  for (const c of raw.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") throw new ArchiveError(`${what} '${showName(raw)}' escapes the root ('..')`);
    parts.push(c);
  }
  return parts.length === 0 ? "" : `/${parts.join("/")}`;
}

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

const TYPES: Record<string, number> = {
  "0": S_IFREG,
  "\0": S_IFREG,
  "7": S_IFREG,
  "2": S_IFLNK,
  "3": S_IFCHR,
  "4": S_IFBLK,
  "5": S_IFDIR,
  D: S_IFDIR,
  "6": S_IFIFO,
};

/** What the next member's headers carried before it: PAX records (global and local), GNU names. */
interface Pending {
  pax: Map<string, string>;
  longName?: string;
  longLink?: string;
}

/** Every member of the archive, in order; throws ArchiveError on anything it must refuse. */
export function scanMembers(stream: TarStream): Member[] {
  const members: Member[] = [];
  const global = new Map<string, string>();
  let pending: Pending = { pax: new Map() };
  for (;;) {
    const at = stream.position;
    const block = stream.read(BLOCK);
    if (block.length === 0) break;
    if (at === 0 && !looksLikeHeader(block) && !(block.length === BLOCK && isZeroBlock(block))) {
      throw new ArchiveError("not a tar archive");
    }
    if (block.length < BLOCK) throw new ArchiveError(`truncated tar header at offset ${at}`);
    if (isZeroBlock(block)) break;
    const h = parseHeader(block, at);
    const size = sizeOf(h, pending.pax);
    if (isMeta(h.typeflag)) {
      metaRecord(stream, h, size, at, global, pending);
      continue;
    }
    members.push(memberOf(h, size, stream.position, global, pending));
    pending = { pax: new Map() };
    const skip = padded(size);
    if (stream.skip(skip) < skip) throw new ArchiveError(`truncated member data at offset ${at}`);
  }
  return members;
}

function sizeOf(h: Header, pax: Map<string, string>): number {
  const v = pax.get("size");
  return v === undefined ? h.size : paxNumber(v, "size");
}

function isMeta(flag: string): boolean {
  return flag === "x" || flag === "g" || flag === "L" || flag === "K" || flag === "V";
}

/** Reads a metadata member (PAX, GNU long name or link, volume label) into `pending` or `global`. */
function metaRecord(
  stream: TarStream,
  h: Header,
  size: number,
  at: number,
  global: Map<string, string>,
  pending: Pending,
): void {
  if (size > MAX_META) throw new ArchiveError(`oversized '${h.typeflag}' header at offset ${at}`);
  const data = stream.read(padded(size));
  if (data.length < padded(size)) throw new ArchiveError(`truncated tar header at offset ${at}`);
  const body = data.subarray(0, size);
  if (h.typeflag === "x") for (const [k, v] of parsePax(body, at)) pending.pax.set(k, v);
  else if (h.typeflag === "g") for (const [k, v] of parsePax(body, at)) global.set(k, v);
  else if (h.typeflag === "L") pending.longName = cstring(body);
  else if (h.typeflag === "K") pending.longLink = cstring(body);
}

function cstring(body: Buffer): string {
  const end = body.indexOf(0);
  return (end < 0 ? body : body.subarray(0, end)).toString("latin1");
}

/** The member a header describes, with everything pending applied (local PAX over global PAX). */
function memberOf(h: Header, size: number, offset: number, global: Map<string, string>, p: Pending): Member {
  const pax = new Map([...global, ...p.pax]);
  const rawName = pax.get("path") ?? p.longName ?? h.name;
  const rawLink = pax.get("linkpath") ?? p.longLink ?? h.linkname;
  if (h.typeflag === "S" || [...pax.keys()].some((k) => k.startsWith("GNU.sparse."))) {
    throw new ArchiveError(`sparse member '${showName(rawName)}' is not supported`);
  }
  if (h.typeflag === "M" || h.typeflag === "N") {
    throw new ArchiveError(`member '${showName(rawName)}' has unsupported type '${h.typeflag}'`);
  }
  // Unknown types are regular files (POSIX); a v7 name ending in '/' is a directory.
  const link = h.typeflag === "1";
  let type = link ? S_IFREG : (TYPES[h.typeflag] ?? S_IFREG);
  if ((h.typeflag === "0" || h.typeflag === "\0") && rawName.endsWith("/")) type = S_IFDIR;
  const mtimeNs = timeOf(pax, "mtime", h.mtime);
  const m: Member = {
    path: normalizePath(rawName),
    type,
    mode: h.mode & 0o7777,
    uid: numberOf(pax, "uid", h.uid),
    gid: numberOf(pax, "gid", h.gid),
    size: type === S_IFREG && !link ? size : 0,
    offset,
    mtimeNs,
    atimeNs: timeOf(pax, "atime", h.atime, mtimeNs),
    ctimeNs: timeOf(pax, "ctime", h.ctime, mtimeNs),
    rdevMajor: numberOf(pax, "SCHILY.devmajor", h.devmajor),
    rdevMinor: numberOf(pax, "SCHILY.devminor", h.devminor),
  };
  if (link) m.hardlink = normalizePath(rawLink, `hard link '${showName(rawName)}' to`);
  if (type === S_IFLNK) m.target = rawLink;
  const xattrs = xattrsOf(pax);
  if (xattrs.size > 0) m.xattrs = xattrs;
  return m;
}

function numberOf(pax: Map<string, string>, key: string, fallback: number): number {
  const v = pax.get(key);
  return v === undefined ? fallback : paxNumber(v, key);
}

function timeOf(pax: Map<string, string>, key: string, seconds: number | undefined, fallback = 0n): bigint {
  const v = pax.get(key);
  if (v !== undefined) return paxTimeNs(v);
  return seconds === undefined ? fallback : BigInt(seconds) * 1_000_000_000n;
}

const SCHILY = "SCHILY.xattr.";
const LIBARCHIVE = "LIBARCHIVE.xattr.";

/** Extended attributes: SCHILY's raw values; libarchive's URL-encoded names and base64 values. */
function xattrsOf(pax: Map<string, string>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of pax) {
    if (k.startsWith(SCHILY)) out.set(k.slice(SCHILY.length), Buffer.from(v, "latin1"));
    else if (k.startsWith(LIBARCHIVE)) {
      const name = urlDecoded(k.slice(LIBARCHIVE.length));
      if (!out.has(name)) out.set(name, Buffer.from(v, "base64"));
    }
  }
  return out;
}

/** A URL-encoded byte string, decoded byte for byte. */
function urlDecoded(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}
