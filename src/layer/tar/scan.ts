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
  decoding,
  BLOCK,
  checksumOk,
  isZeroBlock,
  looksLikeHeader,
  parseHeader,
  showName,
  type Header,
} from "./header";
import { Extended, isMeta, MAX_META, paxNumber, paxTimeNs, paxXattrs } from "./pax";
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

/** Every member of the archive, in order; throws ArchiveError on anything it must refuse. */
export function scanMembers(stream: TarStream): Member[] {
  const members: Member[] = [];
  const extended = new Extended();
  for (;;) {
    const at = stream.position;
    const block = stream.read(BLOCK);
    if (block.length === 0) break;
    if (at === 0 && !looksLikeHeader(block) && !(block.length === BLOCK && isZeroBlock(block))) {
      throw new ArchiveError("not a tar archive");
    }
    if (block.length < BLOCK) throw new ArchiveError(`truncated tar header at offset ${at}`);
    if (isZeroBlock(block)) break;
    if (!checksumOk(block)) throw new ArchiveError(`bad tar header checksum at offset ${at}`);
    const member = worded(at, () => nextMember(stream, block, at, extended));
    if (member !== undefined) members.push(member);
  }
  return members;
}

/** `fn()`, a malformed field or record refused as an ArchiveError naming the header's offset. */
function worded<T>(at: number, fn: () => T): T {
  return decoding(fn, (message) => new ArchiveError(`${message} in the tar header at offset ${at}`));
}

/** The member whose header is `block`, its data skipped; undefined for a meta entry (taken in). */
function nextMember(stream: TarStream, block: Buffer, at: number, extended: Extended): Member | undefined {
  const h = parseHeader(block);
  if (isMeta(h.typeflag)) {
    if (h.size > MAX_META) throw new ArchiveError(`oversized '${h.typeflag}' header at offset ${at}`);
    const data = stream.read(padded(h.size));
    if (data.length < padded(h.size)) throw new ArchiveError(`truncated tar header at offset ${at}`);
    extended.add(h.typeflag, data.subarray(0, h.size));
    return undefined;
  }
  const pax = extended.take();
  const size = numberOf(pax, "size", h.size);
  const member = memberOf(h, size, stream.position, pax);
  const skip = padded(size);
  if (stream.skip(skip) < skip) throw new ArchiveError(`truncated member data at offset ${at}`);
  return member;
}

/** The member a header describes, with the PAX records and GNU long names before it applied. */
function memberOf(h: Header, size: number, offset: number, pax: Map<string, string>): Member {
  const rawName = pax.get("path") ?? h.name;
  const rawLink = pax.get("linkpath") ?? h.linkname;
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
    mode: h.mode,
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
  const xattrs = paxXattrs(pax);
  if (xattrs.size > 0) m.xattrs = xattrs;
  return m;
}

function numberOf(pax: Map<string, string>, key: string, fallback: number): number {
  const v = pax.get(key);
  return v === undefined ? fallback : paxNumber(v, key);
}

function timeOf(pax: Map<string, string>, key: string, seconds: number | undefined, fallback = 0n): bigint {
  const v = pax.get(key);
  if (v !== undefined) return paxTimeNs(v, key);
  return seconds === undefined ? fallback : BigInt(seconds) * 1_000_000_000n;
}
