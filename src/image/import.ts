/**
 * `import`: unpack an OCI layer tarball (plain, gzip or zstd; from a file or a pipe) into a new or empty
 * directory, ready to be used as a branch.
 *
 * Invariants:
 * - The target is checked before anything is read (a bad one leaves a pipe unread); the archive is then
 *   read once, front to back (`archive-input.ts`, `tar-read.ts`), and unpacked as it is read
 *   (`unpack.ts`).
 * - Any failure (not a tar, damaged, an unsafe entry, a whole image archive instead of a layer, a disk
 *   error) is one line, and everything unpacked is removed again (the directory itself too when it did
 *   not exist before): nothing is left half-imported.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import type { Readable } from "node:stream";
import { fromText } from "../sys/bytes";
import { UsageError } from "../errors";
import { ArchiveError, archiveFromStream, openArchive, type ArchiveInput } from "./archive-input";
import { imageDirectoryKind } from "./image-archive";
import { readTar, TarFormatError } from "./tar-read";
import { Unpacker, type ImportSummary, type UnpackOptions } from "./unpack";

export {
  makedev,
  normaliseEntryPath,
  unsafeEntryPath,
  type ImportFormat,
  type ImportSummary,
} from "./unpack";

export type ImportOptions = UnpackOptions;

/** Refuses a target that is not a missing name in an existing directory or an empty directory. */
function checkTarget(target: string): void {
  const st = fs.lstatSync(target, { throwIfNoEntry: false });
  if (st === undefined) {
    if (!fs.statSync(nodePath.dirname(target), { throwIfNoEntry: false })?.isDirectory()) {
      throw new UsageError(`the parent of target '${target}' does not exist`);
    }
    return;
  }
  if (!st.isDirectory()) throw new UsageError(`target '${target}' exists and is not a directory`);
  if (fs.readdirSync(target).length > 0) throw new UsageError(`target directory '${target}' is not empty`);
}

/**
 * Unpacks the layer archive `file` ("-": standard input) into `dir` (UTF-8 text paths). Throws
 * UsageError for bad input, with nothing left behind.
 */
export async function importLayer(
  file: string,
  dir: string,
  opts: ImportOptions = {},
): Promise<ImportSummary> {
  if (file !== "-" && fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) {
    const kind = imageDirectoryKind(file);
    if (kind !== undefined)
      throw new UsageError(`'${file}' is ${kind}, not a layer: use \`unionfs-ts load\``);
  }
  return importFrom((onBytes) => openArchive(file, onBytes), dir, opts);
}

/**
 * Unpacks the layer archive read from `stream` (plain, gzip or zstd) into `dir`; `name` says what it
 * is in messages, `size` (bytes, when known) is for progress. For callers that hold a stream, such as a
 * layer blob inside an image archive.
 */
export async function importLayerStream(
  stream: Readable,
  dir: string,
  opts: ImportOptions & { name: string; size?: number },
): Promise<ImportSummary> {
  return importFrom((onBytes) => archiveFromStream(opts.name, stream, opts.size, onBytes), dir, opts);
}

/** Checks the target, opens the input, unpacks; on any failure removes what it made. */
async function importFrom(
  open: (onBytes: (n: number) => void) => Promise<ArchiveInput>,
  dir: string,
  opts: ImportOptions,
): Promise<ImportSummary> {
  const target = nodePath.resolve(dir);
  checkTarget(target); // before reading anything: a bad target leaves a pipe unread
  let input: ArchiveInput;
  try {
    input = await open((n) => opts.progress?.add(n));
  } catch (err) {
    throw err instanceof ArchiveError ? new UsageError(err.message) : err;
  }
  if (opts.progress && input.size !== undefined) opts.progress.total = input.size;
  const created = !fs.existsSync(target);
  let unpacker: Unpacker | undefined;
  try {
    if (created) fs.mkdirSync(target, { mode: 0o755 });
    const u = new Unpacker(fromText(fs.realpathSync(target)), input.name, opts);
    unpacker = u;
    await readTar(input.chunks, (entry, data) => u.entry(entry, data));
    return u.finish();
  } catch (err) {
    input.close();
    if (created) fs.rmSync(target, { recursive: true, force: true });
    else
      for (const name of fs.readdirSync(target)) {
        fs.rmSync(nodePath.join(target, name), { recursive: true, force: true });
      }
    if (err instanceof TarFormatError) {
      const what = (unpacker?.count ?? 0) === 0 ? "is not a tar archive" : "is a damaged tar archive";
      throw new UsageError(`${input.name} ${what} (${err.message})`);
    }
    throw err instanceof ArchiveError ? new UsageError(err.message) : err;
  }
}
