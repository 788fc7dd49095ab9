/**
 * Opening an archive as a layer's contents: its saved index when one matches, else a scan, whose index
 * is then saved for the next mount.
 *
 * Invariants:
 * - Where an index is looked for and saved, in this order: beside the archive (`ARCHIVE.unionfs-index`),
 *   then in the cache dir (`$XDG_CACHE_HOME/unionfs-ts`, else `/var/cache/unionfs-ts` for root and
 *   `~/.cache/unionfs-ts` for others) under a name hashed from the archive's real path. A place that
 *   cannot be written (read-only, no permission, full) is skipped; when none can, the index lives in
 *   memory only and `warn` says so.
 * - Every refusal is an ArchiveError whose one-line message starts with the archive's path.
 * - Paths are byte strings (sys/bytes.ts), the archive's as the indexes'.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as nodePath from "node:path";
import { codeOf } from "../../errors";
import { bstr, bytesOf, fromText, toText } from "../../sys/bytes";
import { indexArchive, type Indexed } from "./archive";
import { ArchiveError } from "./header";
import { keyOf, loadIndex, serialize, writeIndexFile, type ArchiveKey } from "./store";

export const INDEX_SUFFIX = ".unionfs-index";

/** The two places an archive's index may be (see the module's invariants). */
export function indexLocations(archive: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const real = bstr(fs.realpathSync(bytesOf(archive), { encoding: "buffer" }));
  const xdg = env.XDG_CACHE_HOME;
  const dir =
    xdg !== undefined && xdg.startsWith("/")
      ? nodePath.join(fromText(xdg), "unionfs-ts")
      : process.getuid?.() === 0
        ? "/var/cache/unionfs-ts"
        : nodePath.join(fromText(os.homedir()), ".cache", "unionfs-ts");
  const name = createHash("sha256").update(bytesOf(real)).digest("hex").slice(0, 32);
  return [real + INDEX_SUFFIX, nodePath.join(dir, `${name}.index`)];
}

/** An open archive: its index, and the fds to read it (and its saved windows) through. */
export interface OpenArchive extends Indexed {
  fd: number;
  /** Where the index came from: a saved file, or a scan (then `savedTo` is where it went, if anywhere). */
  source: "saved" | "scanned";
  savedTo?: string;
  close(): void;
}

export interface OpenOptions {
  /** Save a scanned index (default true). */
  save?: boolean;
  env?: NodeJS.ProcessEnv;
  warn?: (message: string) => void;
}

/** Opens the archive at `path` (see the module's invariants). */
export function openArchive(path: string, opts: OpenOptions = {}): OpenArchive {
  let fd: number;
  try {
    fd = fs.openSync(bytesOf(path), "r");
  } catch (err) {
    throw new ArchiveError(`${toText(path)}: cannot open (${codeOf(err) ?? String(err)})`);
  }
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw new ArchiveError("not a regular file");
    const key = keyOf(fd);
    const places = indexLocations(path, opts.env);
    for (const place of places) {
      const loaded = loadIndex(place, key);
      if (loaded === undefined) continue;
      return { ...loaded, fd, source: "saved", close: () => closeAll(fd, loaded.fd) };
    }
    const indexed = indexArchive(fd, st.mtimeNs);
    const where = { places, archive: path, mode: Number(st.mode) };
    const savedTo = opts.save === false ? undefined : save(indexed, key, where, opts.warn);
    // Once saved, the windows are read from the file on demand (32 KiB per MiB need not stay in memory).
    const saved =
      savedTo === undefined || indexed.index.compression !== "gzip" ? undefined : loadIndex(savedTo, key);
    if (saved !== undefined) {
      return { ...saved, fd, source: "scanned", savedTo: savedTo!, close: () => closeAll(fd, saved.fd) };
    }
    const opened: OpenArchive = { ...indexed, fd, source: "scanned", close: () => closeAll(fd) };
    if (savedTo !== undefined) opened.savedTo = savedTo;
    return opened;
  } catch (err) {
    fs.closeSync(fd);
    if (err instanceof ArchiveError) throw new ArchiveError(`${toText(path)}: ${err.message}`);
    throw err;
  }
}

function closeAll(...fds: number[]): void {
  for (const fd of fds) fs.closeSync(fd);
}

/** Saves the index in the first place that takes it; returns that place. */
function save(
  indexed: Indexed,
  key: ArchiveKey,
  { places, archive, mode }: { places: string[]; archive: string; mode: number },
  warn: ((m: string) => void) | undefined,
): string | undefined {
  let bytes: Buffer;
  try {
    bytes = serialize(indexed, key);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    warn?.(`${toText(archive)}: index not saved (${err.message})`);
    return undefined;
  }
  const failures: string[] = [];
  for (const place of places) {
    try {
      fs.mkdirSync(bytesOf(nodePath.dirname(place)), { recursive: true, mode: 0o755 });
      writeIndexFile(place, bytes, mode);
      return place;
    } catch (err) {
      if (codeOf(err) === undefined) throw err;
      failures.push(`${toText(place)}: ${codeOf(err)}`);
    }
  }
  warn?.(`${toText(archive)}: index not saved (${failures.join(", ")}); the next mount scans it again`);
  return undefined;
}
