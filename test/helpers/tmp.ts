/**
 * Temporary directory trees for tests, built from a small declarative spec.
 *
 *   const root = makeTempDir("diff");
 *   writeTree(root, { a: "text", bin: file(Buffer.from([0, 1]), 0o600), d: { e: "x" }, l: symlink("a") });
 *
 * A plain string or Buffer is a file with that content; a plain object is a directory whose keys are its
 * entries; `file()`, `dir()` and `symlink()` add modes and link targets. Every temp dir lives under
 * `os.tmpdir()` with the prefix "unionfs-ts-", so scripts/test.sh can find anything a test leaked.
 * `removeTree` refuses to delete through a mount: a leaked mount stays visible instead of emptying a branch.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mountsUnder } from "./mounts";

const SPEC = Symbol("unionfs-ts tree spec");

export interface FileSpec {
  readonly [SPEC]: "file";
  readonly content: string | Buffer;
  readonly mode?: number;
}

export interface DirSpec {
  readonly [SPEC]: "dir";
  readonly entries: TreeSpec;
  readonly mode?: number;
}

export interface SymlinkSpec {
  readonly [SPEC]: "symlink";
  readonly target: string;
}

export type EntrySpec = string | Buffer | FileSpec | DirSpec | SymlinkSpec | TreeSpec;

/** A directory's entries by name. */
export interface TreeSpec {
  readonly [name: string]: EntrySpec;
}

export function file(content: string | Buffer = "", mode?: number): FileSpec {
  return { [SPEC]: "file", content, mode };
}

export function dir(entries: TreeSpec = {}, mode?: number): DirSpec {
  return { [SPEC]: "dir", entries, mode };
}

export function symlink(target: string): SymlinkSpec {
  return { [SPEC]: "symlink", target };
}

export const TMP_PREFIX = "unionfs-ts-";

/** A new empty directory under os.tmpdir() (mode 0755, not mkdtemp's 0700: it may become a branch root). */
export function makeTempDir(label = "test"): string {
  const created = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${label}-`));
  fs.chmodSync(created, 0o755);
  return fs.realpathSync(created);
}

/** Creates `spec` inside the existing directory `root`. Modes are set exactly (the umask is not applied). */
export function writeTree(root: string, spec: TreeSpec): void {
  for (const [name, entry] of Object.entries(spec)) {
    if (name === "" || name === "." || name === ".." || name.includes("/")) {
      throw new Error(`writeTree: bad entry name ${JSON.stringify(name)}`);
    }
    writeEntry(path.join(root, name), entry);
  }
}

function writeEntry(p: string, entry: EntrySpec): void {
  if (typeof entry === "string" || Buffer.isBuffer(entry)) {
    writeEntry(p, file(entry));
    return;
  }
  const kind = (entry as Partial<FileSpec | DirSpec | SymlinkSpec>)[SPEC];
  if (kind === "file") {
    const f = entry as FileSpec;
    fs.writeFileSync(p, f.content);
    fs.chmodSync(p, f.mode ?? 0o644);
  } else if (kind === "symlink") {
    fs.symlinkSync((entry as SymlinkSpec).target, p);
  } else {
    const d: DirSpec = kind === "dir" ? (entry as DirSpec) : dir(entry as TreeSpec);
    fs.mkdirSync(p);
    fs.chmodSync(p, 0o755);
    writeTree(p, d.entries);
    // Last, so a read-only directory can still be filled.
    fs.chmodSync(p, d.mode ?? 0o755);
  }
}

/** makeTempDir + writeTree. */
export function makeTree(spec: TreeSpec, label = "tree"): string {
  const root = makeTempDir(label);
  writeTree(root, spec);
  return root;
}

/**
 * Deletes a tree made by these helpers. Throws, deleting nothing, when anything is mounted at or below
 * `root`: removing files through a live union would empty its branches and hide the leak.
 */
export function removeTree(root: string): void {
  const mounted = mountsUnder(root);
  if (mounted.length > 0) {
    throw new Error(
      `removeTree: refusing to delete ${root}: still mounted there: ${mounted.map((m) => m.mountPoint).join(", ")}`,
    );
  }
  makeWritable(root);
  fs.rmSync(root, { recursive: true, force: true });
}

/** Read-only directories (made on purpose by a test) would stop rmSync; open them up first. */
function makeWritable(p: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  if ((st.mode & 0o700) !== 0o700) fs.chmodSync(p, (st.mode & 0o7777) | 0o700);
  for (const name of fs.readdirSync(p)) makeWritable(path.join(p, name));
}
