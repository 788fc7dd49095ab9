/**
 * `export`: a layer directory as an OCI layer tarball (what `docker commit` stores for a container's rw
 * layer), written entry by entry through `tar-write.ts` (node-tar's header encoding, plus PAX records).
 *
 * Invariants:
 * - Regular files carry their data, read with backpressure (one file in memory at most one chunk at a
 *   time); every further name of a multiply-linked file becomes a tar hard link to its first name; a
 *   symlink keeps its target; mode (with set-id bits), uid, gid and mtime (seconds) are kept. Access and
 *   change times and user names are left out, as docker does, so two exports of a layer are identical.
 * - Extended attributes that are layer content (`xattrs.ts`: file capabilities, ACLs, `user.*`,
 *   `trusted.*`) go with their entry as PAX `SCHILY.xattr.NAME` records, as podman and Docker write
 *   them; the union's own (`trusted.overlay.*`, `trusted.unionfs.*`, …) and host labels never do.
 * - Whiteouts in any format become empty regular files `dir/.wh.<name>` (owner, mode, time of the marker
 *   that said so); an opaque directory gets `dir/.wh..wh..opq` right after its own entry (owner, mode,
 *   time of the directory, as docker does); FIFOs become FIFO entries.
 * - Order is the walk's (walk.ts): deterministic, whiteouts before their siblings (as the OCI image spec
 *   recommends), a directory before its contents. The layer root itself gets no entry.
 * - Skipped, each with one warning: device nodes other than whiteouts, sockets, and names that are not
 *   UTF-8 (tar names are written as UTF-8 text). The union's work dir and `.wh..wh.*` bookkeeping never
 *   appear.
 * - Paths an `exclude` glob matches (exclude.ts) are left out with all they hold, their whiteouts too.
 * - Only reads the layer.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import type { Layer } from "../layer";
import type { Stat } from "../sys/stat";
import { fromText, toText } from "../sys/bytes";
import { UsageError } from "../errors";
import { headerBlocks, padding, TarWriter, type EntryFields } from "./tar-write";
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
  type EntryItem,
  type LayerItem,
} from "./walk";
import { excluder } from "./exclude";
import type { Progress } from "./progress";
import { layerXattrs } from "./xattrs";

export interface ExportOptions {
  /** Called once per object left out of the archive, with one line of text. */
  onWarning?: (message: string) => void;
  /** End `out` when done (default true; false for process.stdout). */
  end?: boolean;
  /** Told of the total and of every byte of file data and every entry written. */
  progress?: Progress;
  /** Globs of paths to leave out, with all they hold (see exclude.ts). */
  exclude?: readonly string[];
}

export interface ExportSummary {
  /** Tar entries written (including whiteout and opaque markers). */
  entries: number;
  whiteouts: number;
  skipped: number;
}

/** Header fields every entry takes from the object's stat. */
function statFields(st: Stat): Omit<EntryFields, "path"> {
  return {
    mode: Number(st.mode) & 0o7777,
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: new Date(Number(st.mtimeNs / 1_000_000_000n) * 1000),
  };
}

const CHUNK = 64 * 1024;

/**
 * Writes exactly `size` bytes of file `rel` of `layer`, then the padding. A file that shrank meanwhile
 * is padded with zeros (and reported); one that grew is cut at `size`.
 */
async function writeData(
  tar: TarWriter,
  layer: Layer,
  rel: string,
  size: number,
  progress?: Progress,
): Promise<boolean> {
  let sent = 0;
  if (size > 0) {
    const file = layer.open(rel);
    try {
      while (sent < size) {
        const chunk = file.read(Math.min(CHUNK, size - sent), BigInt(sent));
        if (chunk.length === 0) break;
        sent += chunk.length;
        await tar.write(chunk);
        progress?.add(chunk.length);
      }
    } finally {
      file.close();
    }
  }
  if (sent < size) await tar.write(Buffer.alloc(size - sent));
  await tar.write(padding(size));
  return sent === size;
}

/** What one export run keeps track of. */
class Exporter {
  readonly summary: ExportSummary = { entries: 0, whiteouts: 0, skipped: 0 };
  private readonly skipped: string[] = [];
  /** First tar name of each multiply-linked file, by device and inode. */
  private readonly firstNames = new Map<string, string>();

  constructor(
    private readonly tar: TarWriter,
    private readonly layer: Layer,
    private readonly warn: (message: string) => void,
    private readonly progress: Progress | undefined,
  ) {}

  skip(path: string, why: string): void {
    this.warn(`skipped ${showPath(path)}: ${why}`);
    this.summary.skipped += 1;
    this.skipped.push(path);
  }

  /** Tar name of a byte-string layer path, or undefined when it is not UTF-8 (or lies below a skip). */
  tarName(path: string): string | undefined {
    if (this.skipped.some((s) => path.startsWith(`${s}/`))) return undefined;
    const text = toText(path);
    if (fromText(text) !== path) {
      this.skip(path, "the name is not UTF-8, and tar names are written as UTF-8 text");
      return undefined;
    }
    return text.slice(1);
  }

  async empty(fields: EntryFields): Promise<void> {
    await this.tar.empty(fields);
    this.summary.entries += 1;
    this.progress?.add(0, 1);
  }

  async whiteout(path: string, marker: Stat): Promise<void> {
    const name = this.tarName(whiteoutMarkerPath(path));
    if (name === undefined) return;
    await this.empty({ path: name, type: "File", ...statFields(marker) });
    this.summary.whiteouts += 1;
  }

  async entry(item: EntryItem): Promise<void> {
    const st = item.st;
    const type = typeOf(st);
    if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK && type !== S_IFIFO) {
      this.skip(
        item.path,
        type === 0o140000 ? "sockets cannot be archived" : "device nodes are not archived",
      );
      return;
    }
    const name = this.tarName(item.path);
    if (name === undefined) return;
    const fields: EntryFields = { path: name, ...statFields(st), xattrs: layerXattrs(this.layer, item.path) };
    if (type === S_IFDIR) {
      await this.empty({ ...fields, path: `${name}/`, type: "Directory" });
      if (item.opaque) {
        const marker = this.tarName(opaqueMarkerPath(item.path));
        if (marker !== undefined) await this.empty({ path: marker, type: "File", ...statFields(st) });
      }
    } else if (type === S_IFLNK) {
      const target = this.layer.readlink(item.path);
      const linkpath = toText(target);
      if (fromText(linkpath) !== target) {
        this.skip(item.path, "the link target is not UTF-8, and tar names are written as UTF-8 text");
        return;
      }
      await this.empty({ ...fields, type: "SymbolicLink", linkpath });
    } else if (type === S_IFIFO) {
      await this.empty({ ...fields, type: "FIFO" });
    } else await this.file(item, fields);
  }

  private async file(item: EntryItem, fields: EntryFields): Promise<void> {
    const st = item.st;
    const key = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1n ? this.firstNames.get(key) : undefined;
    if (first !== undefined) {
      await this.empty({ ...fields, xattrs: undefined, type: "Link", linkpath: first });
      return;
    }
    if (st.nlink > 1n) this.firstNames.set(key, fields.path);
    const size = Number(st.size);
    await this.tar.write(headerBlocks({ ...fields, type: "File", size }));
    this.summary.entries += 1;
    this.progress?.add(0, 1);
    if (!(await writeData(this.tar, this.layer, item.path, size, this.progress))) {
      this.warn(`${showPath(item.path)} changed while it was exported`);
    }
  }
}

/** Bytes of file data the items hold (each multiply-linked file once): the export's total. */
function dataBytes(items: readonly LayerItem[]): number {
  const seen = new Set<string>();
  let total = 0;
  for (const item of items) {
    if (item.kind !== "entry" || typeOf(item.st) !== S_IFREG) continue;
    const key = `${item.st.dev}:${item.st.ino}`;
    if (item.st.nlink > 1n && seen.has(key)) continue;
    seen.add(key);
    total += Number(item.st.size);
  }
  return total;
}

/** Writes the layer at `upper` (UTF-8 text path) to `out` as an uncompressed tar stream. */
export async function exportLayer(
  upper: string,
  out: NodeJS.WritableStream,
  opts: ExportOptions = {},
): Promise<ExportSummary> {
  const root = layerDir(upper, "layer");
  const excluded = excluder(opts.exclude);
  const full = walkLayer(root);
  const walk = { ...full, items: full.items.filter((item) => !excluded(item.path)) };
  try {
    const tar = new TarWriter(out);
    const ex = new Exporter(tar, walk.layer, opts.onWarning ?? (() => undefined), opts.progress);
    if (opts.progress) opts.progress.total = dataBytes(walk.items);
    if (walk.rootOpaque) {
      await ex.empty({ path: opaqueMarkerPath("/").slice(1), type: "File", ...statFields(walk.rootStat) });
    }
    for (const item of walk.items) {
      if (item.kind === "whiteout") await ex.whiteout(item.path, item.marker);
      else await ex.entry(item);
    }
    await tar.finish(opts.end ?? true);
    return ex.summary;
  } finally {
    walk.layer.close();
  }
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
