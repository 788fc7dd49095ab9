/** Temp branch trees for in-process tests of the union core. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createUnion } from "../../../src/unionfs";
import type { BranchMode } from "../../../src/unionfs/config";
import type { UnionOps } from "../../../src/unionfs/types";
import type { XattrNamespace } from "../../../src/sys/xattrns";

/** name → file content (string), or a nested object for a directory. */
export interface TreeSpec {
  [name: string]: string | TreeSpec;
}

export function writeTree(root: string, spec: TreeSpec): void {
  fs.mkdirSync(root, { recursive: true });
  for (const [name, v] of Object.entries(spec)) {
    const p = path.join(root, name);
    if (typeof v === "string") fs.writeFileSync(p, v);
    else writeTree(p, v);
  }
}

export interface Fixture {
  root: string;
  dirs: string[];
  fs: UnionOps;
  /**
   * Closes the union and opens a new one over the same branches (what a remount does to the core), its
   * private xattrs in namespace `xattrs` if given.
   */
  remount(xattrs?: XattrNamespace): void;
  cleanup(): void;
}

/** Builds one dir per spec (top first) and a union over them. */
export function makeUnion(
  specs: TreeSpec[],
  modes?: BranchMode[],
  whiteout: "aufs" | "overlay" = "aufs",
  xattrs?: XattrNamespace,
): Fixture {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "unionfs-unit-"));
  const dirs = specs.map((spec, i) => {
    const d = path.join(root, `b${i}`);
    writeTree(d, spec);
    return d;
  });
  const branches = dirs.map((p, i) => ({ path: p, mode: modes?.[i] ?? (i === 0 ? "rw" : "ro") }));
  return {
    root,
    dirs,
    fs: createUnion({ branches, whiteout, xattrs }),
    remount(again = xattrs) {
      this.fs.destroy();
      this.fs = createUnion({ branches, whiteout, xattrs: again });
    },
    cleanup() {
      this.fs.destroy();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

export const root = { uid: 0, gid: 0, pid: 1 };

/** Snapshot of a real directory: relative path → content (files) or "<dir>". */
export function listTree(dir: string, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    const rel = prefix + name;
    const st = fs.lstatSync(p);
    if (st.isDirectory()) {
      out[rel] = "<dir>";
      Object.assign(out, listTree(p, rel + "/"));
    } else if (st.isSymbolicLink()) out[rel] = "-> " + fs.readlinkSync(p);
    else out[rel] = fs.readFileSync(p, "utf8");
  }
  return out;
}

/** A file's whole content (up to 1 MiB) read through the union. */
/** The names a merged listing of `dir` holds (no "." or ".."). */
export function names(f: Fixture, dir: string): string[] {
  const dh = f.fs.opendir(dir);
  try {
    return f.fs.readdir(dh).map((e) => e.name);
  } finally {
    f.fs.releasedir(dh);
  }
}

export function readAll(f: Fixture, p: string): string {
  const fh = f.fs.open(p, fs.constants.O_RDONLY);
  try {
    return f.fs.read(fh, 1 << 20, 0n).toString();
  } finally {
    f.fs.release(fh);
  }
}

/** Runs the calling suite under umask 0 (so modes in its assertions are exact), restoring it after. */
export function umaskZeroInSuite(): void {
  let prev = 0;
  before(() => {
    prev = process.umask(0);
  });
  after(() => process.umask(prev));
}
