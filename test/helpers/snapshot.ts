/**
 * Snapshots of a directory tree as a user sees it: path, type, permissions, owner, size, content hash,
 * link target. Two views of the same logical tree (say, a union and kernel overlayfs over the same
 * branches) must give equal snapshots; inode numbers, directory sizes and times are left out because
 * they legitimately differ between filesystems. `{ exact: true }` adds inode, link count and times, for
 * checking that a branch was not touched at all.
 *
 * Reads are asynchronous, so a hung FUSE daemon makes a test time out instead of freezing mocha.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./mounts";
import { llistxattr } from "../../src/sys/libc";

export type EntryType = "file" | "dir" | "symlink" | "fifo" | "socket" | "chardev" | "blockdev";

export interface SnapshotEntry {
  /** Relative to the snapshot root, "/"-separated; the root itself is ".". Non-UTF-8 bytes show as \xNN. */
  path: string;
  type: EntryType;
  /** Permission bits (mode & 0o7777). */
  perm: number;
  uid: number;
  gid: number;
  /** Files: byte length; symlinks: target length. Absent for directories (their size is fs-specific). */
  size?: number;
  /** Regular files only (directory link counts differ between filesystems, e.g. overlayfs says 1). */
  nlink?: number;
  /** sha256 of a regular file's contents. */
  sha256?: string;
  target?: string;
  rdev?: number;
  /** Only with `exact`. */
  ino?: string;
  mtimeNs?: string;
  ctimeNs?: string;
  dirNlink?: number;
}

export interface SnapshotOptions {
  /** Add inode numbers, times and directory link counts: for "this tree was not modified at all". */
  exact?: boolean;
  /** Leave out entries (and everything below them) for which this returns true; `rel` as in `path`. */
  exclude?: (rel: string) => boolean;
}

function typeOf(st: fs.BigIntStats): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "chardev";
  return "blockdev";
}

/** Text of a name's bytes: UTF-8 when valid, with invalid bytes as \xNN. */
export function showName(name: Buffer): string {
  const text = name.toString("utf8");
  if (Buffer.from(text, "utf8").equals(name)) return text;
  return [...name]
    .map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16)}`))
    .join("");
}

async function hashFile(p: Buffer): Promise<string> {
  const h = createHash("sha256");
  const fh = await fs.promises.open(p, "r");
  try {
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

/** Every entry at and below `root`, sorted by path; symlinks are not followed. */
export async function snapshotTree(root: string, opts: SnapshotOptions = {}): Promise<SnapshotEntry[]> {
  const out: SnapshotEntry[] = [];
  const walk = async (abs: Buffer, rel: string): Promise<void> => {
    if (rel !== "." && opts.exclude?.(rel)) return;
    const st = await fs.promises.lstat(abs, { bigint: true });
    const type = typeOf(st);
    const e: SnapshotEntry = {
      path: rel,
      type,
      perm: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
    };
    if (type === "file") {
      e.size = Number(st.size);
      e.nlink = Number(st.nlink);
      e.sha256 = await hashFile(abs);
    } else if (type === "symlink") {
      const target = await fs.promises.readlink(abs, { encoding: "buffer" });
      e.size = Number(st.size);
      e.target = showName(target);
    } else if (type === "chardev" || type === "blockdev") {
      e.rdev = Number(st.rdev);
    }
    if (opts.exact) {
      e.ino = st.ino.toString();
      e.mtimeNs = st.mtimeNs.toString();
      e.ctimeNs = st.ctimeNs.toString();
      if (type === "dir") e.dirNlink = Number(st.nlink);
    }
    out.push(e);
    if (type === "dir") {
      const names = await fs.promises.readdir(abs, { encoding: "buffer" });
      for (const name of names) {
        const shown = showName(name);
        await walk(Buffer.concat([abs, Buffer.from("/"), name]), rel === "." ? shown : `${rel}/${shown}`);
      }
    }
  };
  await walk(Buffer.from(path.resolve(root)), ".");
  out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return out;
}

/** One line per entry, e.g. `dir/f file 644 0:0 size=3 nlink=1 sha256=ab12…`. */
export function formatEntry(e: SnapshotEntry): string {
  const parts = [e.path, e.type, e.perm.toString(8).padStart(3, "0"), `${e.uid}:${e.gid}`];
  for (const k of ["size", "nlink", "target", "rdev", "ino", "mtimeNs", "ctimeNs", "dirNlink"] as const) {
    if (e[k] !== undefined) parts.push(`${k}=${String(e[k])}`);
  }
  if (e.sha256 !== undefined) parts.push(`sha256=${e.sha256.slice(0, 12)}`);
  return parts.join(" ");
}

export function formatSnapshot(entries: readonly SnapshotEntry[]): string {
  return entries.map(formatEntry).join("\n");
}

/** Human-readable differences ("- only in a", "+ only in b", "~ differs"); empty when equal. */
export function diffSnapshots(a: readonly SnapshotEntry[], b: readonly SnapshotEntry[]): string[] {
  const byPath = (s: readonly SnapshotEntry[]) => new Map(s.map((e) => [e.path, e]));
  const ma = byPath(a);
  const mb = byPath(b);
  const paths = [...new Set([...ma.keys(), ...mb.keys()])].sort();
  const lines: string[] = [];
  for (const p of paths) {
    const ea = ma.get(p);
    const eb = mb.get(p);
    if (ea && !eb) lines.push(`- ${formatEntry(ea)}`);
    else if (!ea && eb) lines.push(`+ ${formatEntry(eb)}`);
    else if (ea && eb && formatEntry(ea) !== formatEntry(eb)) {
      lines.push(`~ ${formatEntry(ea)}`, `  ${formatEntry(eb)}`);
    }
  }
  return lines;
}

/**
 * Every extended attribute at and below `root` (all namespaces, trusted.* included when root), as
 * getfattr prints them: compare two dumps for equality. Needs the `attr` package (scripts/setup.sh).
 */
export function xattrDump(root: string): string {
  const r = run("getfattr", ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", root]);
  if (r.status !== 0) throw new Error(`getfattr failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** Names of the xattrs starting with `prefix` on `root` and every file and directory below it. */
export function xattrNamesUnder(root: string, prefix: string): string[] {
  const out = llistxattr(root).filter((n) => n.startsWith(prefix));
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) out.push(...xattrNamesUnder(p, prefix));
    else if (e.isFile()) out.push(...llistxattr(p).filter((n) => n.startsWith(prefix)));
  }
  return out;
}
