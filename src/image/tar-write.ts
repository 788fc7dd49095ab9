/**
 * Writing a tar stream entry by entry, with node-tar's `Header` and `Pax` encoding every header block
 * (nothing here lays out a header field by hand) and `pax.ts` adding the records node-tar cannot write
 * (`SCHILY.xattr.*`).
 *
 * Invariants:
 * - An entry is at most one extended header (`x`) followed by its ustar header: the standard fields
 *   node-tar puts in a pax header when a field does not fit (long or non-ASCII path or link target,
 *   big numbers) and the entry's extended attributes share that one header, since readers (GNU tar,
 *   Go's archive/tar) keep only the last of consecutive `x` headers.
 * - An entry without extended attributes is written exactly as node-tar's `Pack` writes it.
 * - Data is written in batches of at least 64 KiB with backpressure (waiting for `drain`); an error of
 *   the output stream fails the next write. The archive ends with two zero blocks.
 */
import { once } from "node:events";
import * as nodePath from "node:path";
import { finished } from "node:stream/promises";
import { Header, Pax, type HeaderData } from "tar";
import { encodeRecords, xattrRecords } from "../layer/tar/pax";

export const BLOCK = 512;

export interface EntryFields extends HeaderData {
  path: string;
  /** Extended attributes, name (text) → value. */
  xattrs?: ReadonlyMap<string, Buffer>;
}

/** Zero bytes that pad `size` bytes to a whole number of blocks. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The header blocks of one entry: an extended header when needed, then its ustar header. */
export function headerBlocks(fields: EntryFields): Buffer {
  const { xattrs, ...data } = fields;
  const block = Buffer.alloc(BLOCK);
  const needPax = new Header(data).encode(block, 0);
  const paxFields = { ...data, atime: undefined, ctime: undefined };
  if (xattrs === undefined || xattrs.size === 0) {
    return needPax ? Buffer.concat([new Pax(paxFields).encode(), block]) : block;
  }
  const standard = needPax ? Buffer.from(new Pax(paxFields).encodeBody(), "utf8") : Buffer.alloc(0);
  const body = Buffer.concat([standard, encodeRecords(xattrRecords(xattrs))]);
  const paxHeader = Buffer.alloc(BLOCK);
  new Header({
    path: `PaxHeader/${nodePath.basename(data.path)}`.slice(0, 99),
    mode: 0o644,
    uid: data.uid,
    gid: data.gid,
    size: body.length,
    mtime: data.mtime,
    type: "ExtendedHeader",
    linkpath: "",
    uname: "",
    gname: "",
    devmaj: 0,
    devmin: 0,
  }).encode(paxHeader, 0);
  return Buffer.concat([paxHeader, body, padding(body.length), block]);
}

/** Small writes are gathered up to this many bytes (one write per header block was the cost). */
const BATCH = 64 * 1024;

/** A tar stream on `out`. */
export class TarWriter {
  private failed: Error | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly out: NodeJS.WritableStream) {
    out.on("error", (err: Error) => (this.failed ??= err));
  }

  /** Queues `buf` (not copied: it must not change afterwards); writes once a batch is full. */
  async write(buf: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    if (buf.length === 0) return;
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (this.pendingBytes >= BATCH) await this.flush();
  }

  /** Writes what is queued, waiting for the output to drain when it asks to. */
  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const batch = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.out.write(batch)) await once(this.out, "drain");
  }

  /** Writes an entry without data (anything but a non-empty regular file). */
  async empty(fields: EntryFields): Promise<void> {
    await this.write(headerBlocks({ ...fields, size: 0 }));
  }

  /** Writes the end-of-archive blocks; ends `out` and waits for it to finish when `end`. */
  async finish(end: boolean): Promise<void> {
    await this.write(Buffer.alloc(2 * BLOCK));
    await this.flush();
    if (end) {
      this.out.end();
      await finished(this.out);
    }
    if (this.failed) throw this.failed;
  }
}
