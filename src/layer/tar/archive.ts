/**
 * A tar archive as a layer's contents: what kind it is (by its first bytes, not its name), its tree,
 * and reading a member's data at any offset.
 *
 * Invariants:
 * - Kinds: plain tar (a valid header, or an empty archive of zero blocks) and gzip. zstd, xz and bzip2
 *   are recognized and refused with one line; anything else is "not a tar archive".
 * - The archive is assumed not to change while it is open (as lower directories are): data is read
 *   by offset from the fd opened at the start.
 * - Plain data is read with pread; gzip data through spans (gzip.ts) inflated as far as a read needs, the
 *   most recent of which are kept in one LRU for the whole process, bounded in bytes.
 */
import * as fs from "node:fs";
import { LRUCache } from "lru-cache";
import { ArchiveError, BLOCK, isZeroBlock, looksLikeHeader } from "./header";
import {
  GzipScanner,
  isGzip,
  SpanInflater,
  spanOf,
  type Checkpoint,
  type GzipMap,
  type SpanData,
} from "./gzip";
import { scanMembers } from "./scan";
import { FileStream, preadFully } from "./stream";
import { buildTree, type TarNode, type TarTree } from "./tree";

export type Compression = "none" | "gzip";

/** What indexing an archive finds: everything a saved index keeps but the windows. */
export interface ArchiveIndex {
  compression: Compression;
  tree: TarTree;
  /** gzip: the checkpoints and the uncompressed size. */
  checkpoints?: Checkpoint[];
  size?: number;
}

/** An index and where the windows of its (gzip) checkpoints come from. */
export interface Indexed {
  index: ArchiveIndex;
  window: (i: number) => Buffer;
}

function noWindows(i: number): Buffer {
  throw new Error(`no window for checkpoint ${i} of an uncompressed archive`);
}

const MAGICS: [number[], string][] = [
  [[0x28, 0xb5, 0x2f, 0xfd], "zstd"],
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], "xz"],
  [[0x42, 0x5a, 0x68], "bzip2"],
];

/**
 * The compression of the archive open on `fd` judged by its first bytes; undefined when it is neither
 * a tar nor a compressed file this knows. A compression that cannot be read throws an ArchiveError.
 */
export function detect(fd: number): Compression | undefined {
  const head = Buffer.alloc(BLOCK);
  const n = preadFully(fd, head, BLOCK, 0);
  if (n >= 2 && isGzip(head)) return "gzip";
  for (const [magic, name] of MAGICS) {
    if (n >= magic.length && magic.every((b, i) => head[i] === b)) {
      throw new ArchiveError(
        `${name}-compressed archives cannot be read in place (plain tar and gzip can): decompress it first`,
      );
    }
  }
  if (n === BLOCK && (looksLikeHeader(head) || isZeroBlock(head))) return "none";
  return undefined;
}

/** True when `path` is a regular file whose content is a tar archive this can mount. */
export function isTarArchive(path: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, "r");
  } catch {
    return false;
  }
  try {
    return fs.fstatSync(fd).isFile() && detect(fd) !== undefined;
  } catch (err) {
    if (err instanceof ArchiveError) return true;
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/** Scans the archive on `fd` once and builds its index; `mtimeNs` dates implicit directories. */
export function indexArchive(fd: number, mtimeNs: bigint): Indexed {
  const compression = detect(fd);
  if (compression === undefined) throw new ArchiveError("not a tar archive");
  if (compression === "none") {
    const members = scanMembers(new FileStream(fd, fs.fstatSync(fd).size));
    return { index: { compression, tree: buildTree(members, mtimeNs) }, window: noWindows };
  }
  const scanner = new GzipScanner(fd);
  try {
    const members = scanMembers(scanner);
    if (members.length === 0 && scanner.position === 0) throw new ArchiveError("not a tar archive");
    while (scanner.skip(1 << 30) > 0); // to the end: every member's CRC checked, the size known
    const { checkpoints, windows, size } = scanner;
    const index: ArchiveIndex = { compression, tree: buildTree(members, mtimeNs), checkpoints, size };
    return { index, window: (i) => windows[i]! };
  } finally {
    scanner.close();
  }
}

/** Bytes of inflated spans kept, for all the gzip archives of the process together. */
export const SPAN_CACHE_BYTES = 64 * 1024 * 1024;

/** A cached span and the inflater that made it (which takes its room back when it is dropped). */
interface CachedSpan {
  span: SpanData;
  owner: SpanInflater;
}

/** The spans of every gzip archive, keyed by reader and span: one budget however many layers. */
const spanCache = new LRUCache<string, CachedSpan>({
  maxSize: SPAN_CACHE_BYTES,
  sizeCalculation: (c) => c.span.data.length || 1,
  dispose: (c, _key, reason) => {
    if (reason !== "set") c.owner.recycle(c.span);
  },
});

let readers = 0;

/** Reads members' data from an open archive (plain or gzip). */
export class ArchiveReader {
  private readonly spans: SpanInflater | undefined;
  private readonly index: ArchiveIndex;
  /** This reader's prefix of keys in the span cache. */
  private readonly id = `${readers++}:`;
  private readonly cached = new Set<number>();

  constructor(
    private readonly fd: number,
    { index, window }: Indexed,
  ) {
    this.index = index;
    if (index.compression !== "gzip") return;
    const map: GzipMap = { checkpoints: index.checkpoints!, size: index.size!, window };
    this.spans = new SpanInflater(fd, map);
  }

  /** Copies up to `len` bytes of `node`'s data from offset `pos` into `buf[at…]`; returns the count. */
  read(node: TarNode, buf: Buffer, at: number, len: number, pos: number): number {
    const n = Math.max(0, Math.min(len, node.size - pos));
    if (n === 0) return 0;
    if (this.spans === undefined) {
      const got = preadFully(this.fd, buf.subarray(at, at + n), n, node.offset + pos);
      if (got < n) throw new ArchiveError("archive is shorter than its index says");
      return got;
    }
    this.readGzip(node.offset + pos, buf, at, n);
    return n;
  }

  private readGzip(from: number, buf: Buffer, at: number, n: number): void {
    const cps = this.index.checkpoints!;
    let done = 0;
    for (let i = spanOf(cps, from); done < n; i++) {
      const start = cps[i]!.out;
      const span = this.span(i, from + n - start);
      const k = span.data.copy(buf, at + done, from + done - start, Math.min(span.have, from + n - start));
      if (k === 0) throw new ArchiveError("archive is shorter than its index says");
      done += k;
    }
  }

  /** Span `i`, inflated at least to byte `need` of it. */
  private span(i: number, need: number): SpanData {
    const known = spanCache.get(this.id + i);
    if (known !== undefined && known.span.have >= need) return known.span;
    const span = this.spans!.fill(i, need, known?.span);
    spanCache.set(this.id + i, { span, owner: this.spans! });
    this.cached.add(i);
    return span;
  }

  close(): void {
    for (const i of this.cached) spanCache.delete(this.id + i);
    this.cached.clear();
    this.spans?.close();
  }
}
