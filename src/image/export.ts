/**
 * `export`: a layer directory as an OCI layer tarball (what `docker commit` stores for a container's rw
 * layer), written with node-tar's `Pack`.
 *
 * Invariants:
 * - Every entry goes into the `Pack` as a `ReadEntry` built from a node-tar `Header` (node-tar encodes
 *   the headers, pax extensions included; nothing here writes a tar header by hand). The layer is read
 *   here rather than by `Pack` itself because `Pack` cannot mix entries it stats with synthetic ones
 *   (with hard links among them it stalls or writes after its end), and whiteouts need synthetic ones.
 * - Regular files carry their data, read with backpressure (one file in memory at most one chunk at a
 *   time); every further name of a multiply-linked file becomes a tar hard link to its first name; a
 *   symlink keeps its target; mode (with set-id bits), uid, gid and mtime (seconds) are kept. Access and
 *   change times and user names are left out, as docker does, so two exports of a layer are identical.
 * - Whiteouts in any format become empty regular files `dir/.wh.<name>` (owner, mode, time of the marker
 *   that said so); an opaque directory gets `dir/.wh..wh..opq` right after its own entry (owner, mode,
 *   time of the directory, as docker does); FIFOs become FIFO entries.
 * - Order is the walk's (walk.ts): deterministic, whiteouts before their siblings (as the OCI image spec
 *   recommends), a directory before its contents. The layer root itself gets no entry.
 * - Skipped, each with one warning: device nodes other than whiteouts (node-tar's `Pack` drops device
 *   numbers from the entries it is given), sockets, and names that are not UTF-8 (node-tar writes every
 *   name as UTF-8 text). The union's work dir and `.wh..wh.*` bookkeeping never appear. Extended
 *   attributes (overlay markers, `trusted.unionfs.origin`, and every other one) are not archived:
 *   node-tar does not support them.
 * - Only reads the layer.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { once } from "node:events";
import { pipeline } from "node:stream/promises";
import { Header, Pack, ReadEntry, type HeaderData } from "tar";
import { bytesOf, bstr, fromText, toText } from "../sys/bytes";
import { UsageError } from "../unionfs/branches";
import {
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  layerDir,
  opaqueMarkerPath,
  showPath,
  typeOf,
  walkLayer,
  whiteoutMarkerPath,
} from "./walk";

export interface ExportOptions {
  /** Called once per object left out of the archive, with one line of text. */
  onWarning?: (message: string) => void;
  /** End `out` when done (default true; false for process.stdout). */
  end?: boolean;
}

export interface ExportSummary {
  /** Tar entries written (including whiteout and opaque markers). */
  entries: number;
  whiteouts: number;
  skipped: number;
}

/** Header fields every entry takes from the object's stat. */
function statFields(st: import("../sys/stat").Stat): HeaderData {
  return {
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: new Date(Number(st.mtimeNs / 1_000_000_000n) * 1000),
  };
}

/** An entry without data (everything but a non-empty regular file), ended and ready for `Pack`. */
function emptyEntry(data: HeaderData): ReadEntry {
  const entry = new ReadEntry(new Header({ size: 0, ...data }));
  entry.end();
  return entry;
}

/**
 * Feeds exactly `size` bytes of the file `abs` into `entry` with backpressure, then ends it. A file
 * that shrank meanwhile is padded with zeros (and reported); one that grew is cut at `size`.
 */
async function feedFile(entry: ReadEntry, abs: string, size: number): Promise<boolean> {
  let sent = 0;
  if (size > 0) {
    const stream = fs.createReadStream(bytesOf(abs), { start: 0, end: size - 1 });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      sent += chunk.length;
      if (!entry.write(chunk)) await once(entry, "drain");
    }
  }
  if (sent < size) entry.write(Buffer.alloc(size - sent));
  entry.end();
  return sent === size;
}

/** Writes the layer at `upper` (UTF-8 text path) to `out` as an uncompressed tar stream. */
export async function exportLayer(
  upper: string,
  out: NodeJS.WritableStream,
  opts: ExportOptions = {},
): Promise<ExportSummary> {
  const root = layerDir(upper, "layer");
  const warn = opts.onWarning ?? (() => undefined);
  const walk = walkLayer(root);
  const pack = new Pack({ onwarn: (_code: string, message: string) => warn(message) });
  const done = pipeline(pack, out, { end: opts.end ?? true });
  const summary: ExportSummary = { entries: 0, whiteouts: 0, skipped: 0 };
  const skipped: string[] = [];
  const skip = (path: string, why: string): void => {
    warn(`skipped ${showPath(path)}: ${why}`);
    summary.skipped += 1;
    skipped.push(path);
  };
  /** Tar name of a byte-string layer path, or undefined when it is not UTF-8 (or lies below a skip). */
  const tarName = (path: string): string | undefined => {
    if (skipped.some((s) => path.startsWith(`${s}/`))) return undefined;
    const text = toText(path);
    if (fromText(text) !== path) {
      skip(path, "the name is not UTF-8, and tar names are written as UTF-8 text");
      return undefined;
    }
    return text.slice(1);
  };
  const add = (entry: ReadEntry): ReadEntry => {
    pack.add(entry);
    summary.entries += 1;
    return entry;
  };
  /** First tar name of each multiply-linked file, by device and inode. */
  const firstNames = new Map<string, string>();

  try {
    if (walk.rootOpaque) {
      add(emptyEntry({ path: opaqueMarkerPath("/").slice(1), type: "File", ...statFields(walk.rootStat) }));
    }
    for (const item of walk.items) {
      if (item.kind === "whiteout") {
        const name = tarName(whiteoutMarkerPath(item.path));
        if (name === undefined) continue;
        add(emptyEntry({ path: name, type: "File", ...statFields(item.marker) }));
        summary.whiteouts += 1;
        continue;
      }
      const st = item.st;
      const type = typeOf(st);
      if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK && type !== S_IFIFO) {
        skip(item.path, type === 0o140000 ? "sockets cannot be archived" : "device nodes are not archived");
        continue;
      }
      const name = tarName(item.path);
      if (name === undefined) continue;
      const fields = { path: name, ...statFields(st) };
      const abs = walk.root + item.path;
      if (type === S_IFDIR) {
        add(emptyEntry({ ...fields, path: `${name}/`, type: "Directory" }));
        if (item.opaque) {
          const marker = tarName(opaqueMarkerPath(item.path));
          if (marker !== undefined) add(emptyEntry({ path: marker, type: "File", ...statFields(st) }));
        }
      } else if (type === S_IFLNK) {
        const target = bstr(fs.readlinkSync(bytesOf(abs), { encoding: "buffer" }));
        const linkpath = toText(target);
        if (fromText(linkpath) !== target) {
          skip(item.path, "the link target is not UTF-8, and tar names are written as UTF-8 text");
          continue;
        }
        add(emptyEntry({ ...fields, type: "SymbolicLink", linkpath }));
      } else if (type === S_IFIFO) {
        add(emptyEntry({ ...fields, type: "FIFO" }));
      } else {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1n ? firstNames.get(key) : undefined;
        if (first !== undefined) {
          add(emptyEntry({ ...fields, type: "Link", linkpath: first }));
          continue;
        }
        if (st.nlink > 1n) firstNames.set(key, name);
        const size = Number(st.size);
        const entry = add(new ReadEntry(new Header({ ...fields, type: "File", size })));
        if (!(await feedFile(entry, abs, size))) warn(`${showPath(item.path)} changed while it was exported`);
      }
    }
    pack.end();
  } catch (err) {
    pack.destroy();
    await done.catch(() => undefined);
    throw err;
  }
  await done;
  return summary;
}

/** Refuses an output file inside the layer (it would archive itself). */
export function checkOutsideLayer(output: string, upper: string): void {
  const layer = layerDir(upper, "layer");
  const abs = nodePath.resolve(output);
  const parent = nodePath.dirname(abs);
  let realParent: string;
  try {
    realParent = fs.realpathSync(parent);
  } catch {
    throw new UsageError(`cannot write '${output}': '${parent}' does not exist`);
  }
  const real = nodePath.join(realParent, nodePath.basename(abs));
  if (real === layer || real.startsWith(`${layer}/`)) {
    throw new UsageError(`output file '${output}' is inside the layer '${upper}'`);
  }
}
