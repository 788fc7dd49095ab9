/**
 * Branch lists (`A:B`, `A=rw:B=ro:C=ro+wh`) and the checks a mount must pass before anything is touched.
 *
 * Invariants: every function here only reads the disk; each failure is a `UsageError` whose message is
 * one line naming the offending branch or option, so the CLI can print it as is.
 */
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { UsageError } from "../errors";
import { mountsAt } from "../sys/mountinfo";
import {
  MAX_BRANCHES,
  MAX_READONLY_BRANCHES,
  type BranchMode,
  type BranchSpec,
  type UnionConfig,
} from "./config";
// Narrow imports: the CLI checks branches before a mount, and the whiteout registry and the layer
// classes (with their native bindings) would load in its thread for these two names alone.
import { WORKDIR_NAME } from "../whiteout/aufs";
import { isTarArchive } from "../layer/tar/load";

const MODES: readonly BranchMode[] = ["rw", "ro", "ro+wh", "rr"];

/** Parses a branch list, top first. The first branch defaults to rw, the others to ro. */
/**
 * Splits `s` at each `sep` that no backslash escapes; each piece keeps its escapes (`unescape` drops
 * them), so a directory whose name holds ':' or '=' is written `a\:b` or `a\=b`.
 */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    if (ch === "\\" && i + 1 < s.length) {
      cur += ch + (s[++i] as string);
    } else if (ch === sep) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\([:=\\])/g, "$1");
}

/**
 * The branch list that `parseBranches` reads back as `branches`: each path with ':', '=' and '\'
 * escaped, its mode written out unless it is the default for its place (rw first, ro below).
 */
export function formatBranches(branches: readonly BranchSpec[]): string {
  return branches
    .map((b, i) => {
      const path = b.path.replace(/[\\:=]/g, (ch) => `\\${ch}`);
      return b.mode === (i === 0 ? "rw" : "ro") ? path : `${path}=${b.mode}`;
    })
    .join(":");
}

export function parseBranches(list: string, cwd = process.cwd()): BranchSpec[] {
  if (list.length === 0) throw new UsageError("empty branch list");
  const items = splitUnescaped(list, ":");
  if (items.length > MAX_BRANCHES) {
    throw new UsageError(
      `too many branches: ${items.length} (the limit is ${MAX_READONLY_BRANCHES} read-only and one rw)`,
    );
  }
  return items.map((item, i) => parseBranch(item, i, cwd));
}

function parseBranch(item: string, index: number, cwd: string): BranchSpec {
  const parts = splitUnescaped(item, "=");
  const dir = unescape(parts.length === 1 ? item : parts.slice(0, -1).join("="));
  const mode = parts.length === 1 ? (index === 0 ? "rw" : "ro") : (parts[parts.length - 1] as string);
  if (dir.length === 0) throw new UsageError(`empty branch at position ${index + 1} of the branch list`);
  if (!(MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`bad mode '${mode}' for branch '${dir}' (expected one of ${MODES.join(", ")})`);
  }
  return { path: nodePath.resolve(cwd, dir), mode: mode as BranchMode };
}

/**
 * Checks branches exist, are directories (or, read-only, tar archives: tar/layer.ts), are distinct, do
 * not nest, and only the top one is rw.
 */
export function checkBranches(branches: readonly BranchSpec[]): void {
  if (branches.length === 0) throw new UsageError("no branches given");
  const readOnly = branches.filter((b) => b.mode !== "rw").length;
  if (branches.length > MAX_BRANCHES || readOnly > MAX_READONLY_BRANCHES) {
    throw new UsageError(
      `too many branches: ${branches.length} (the limit is ${MAX_READONLY_BRANCHES} read-only and one rw)`,
    );
  }
  const real: string[] = [];
  branches.forEach((b, i) => {
    if (b.mode === "rw" && i !== 0) throw new UsageError(`only the top branch can be rw, not '${b.path}'`);
    real.push(realBranch(b));
  });
  for (let i = 0; i < real.length; i++) {
    for (let j = 0; j < real.length; j++) {
      const a = real[i] as string;
      const b = real[j] as string;
      if (i < j && a === b) throw new UsageError(`branch '${branches[j]?.path}' is listed twice`);
      if (i !== j && isInside(b, a)) {
        throw new UsageError(`branches '${branches[i]?.path}' and '${branches[j]?.path}' overlap`);
      }
    }
  }
}

/**
 * The mountpoint's real path, checked: an existing directory, not already a mountpoint, not inside or
 * above a branch of `config` (when given), its path at most `maxBytes` bytes (when given: fuse-native
 * copies it into a fixed buffer). The CLI, the library and both transports check with this.
 */
export function checkMountpoint(mountpoint: string, config?: UnionConfig, maxBytes?: number): string {
  const mnt = realDir(mountpoint, "mountpoint");
  if (isMountpoint(mnt))
    throw new UsageError(`mountpoint '${mountpoint}' is busy: something is mounted there`);
  if (maxBytes !== undefined && Buffer.byteLength(mnt) > maxBytes) {
    throw new UsageError(`mountpoint '${mountpoint}' is too long: at most ${maxBytes} bytes`);
  }
  for (const b of config?.branches ?? []) {
    const real = fs.realpathSync(b.path);
    if (real === mnt || isInside(mnt, real) || isInside(real, mnt)) {
      throw new UsageError(`mountpoint '${mountpoint}' overlaps branch '${b.path}'`);
    }
  }
  return mnt;
}

/** Checks an explicit work dir: a directory on the writable branch's filesystem, outside the union. */
/**
 * An explicit work dir must be on the writable branch's filesystem and apart from every branch and from
 * the mountpoint (neither inside the other): otherwise its private subdir would show in the union, be
 * written into a read-only branch, or be emptied (at mount) while it holds branch data.
 */
export function checkWorkdir(config: UnionConfig, mountpoint?: string): void {
  const top = config.branches[0];
  if (!config.workdir || !top) return;
  if (top.mode !== "rw") throw new UsageError("workdir= needs a writable top branch");
  const work = realDir(config.workdir, "workdir");
  if (fs.statSync(config.workdir).dev !== fs.statSync(top.path).dev) {
    throw new UsageError(`workdir '${config.workdir}' is not on the same filesystem as '${top.path}'`);
  }
  const apart = (other: string): boolean =>
    other !== work && !isInside(work, other) && !isInside(other, work);
  for (const b of config.branches) {
    if (!apart(fs.realpathSync(b.path))) {
      throw new UsageError(`workdir '${config.workdir}' overlaps branch '${b.path}'`);
    }
  }
  const mnt = mountpoint === undefined ? undefined : realOrSame(mountpoint);
  if (mnt !== undefined && !apart(mnt)) {
    throw new UsageError(`workdir '${config.workdir}' overlaps mountpoint '${mountpoint}'`);
  }
}

function realOrSame(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return nodePath.resolve(p);
  }
}

/** The work dir a config uses: the explicit one (plus a private subdir), or one inside the rw branch. */
export function workdirOf(config: UnionConfig): string | undefined {
  const top = config.branches[0];
  if (!top || top.mode !== "rw") return undefined;
  return config.workdir ? nodePath.join(config.workdir, "unionfs-ts") : nodePath.join(top.path, WORKDIR_NAME);
}

/** The real path of a branch: a directory, or a read-only branch's tar archive (judged by its content). */
function realBranch(b: BranchSpec): string {
  const st = statOf(b.path, "branch");
  if (st.isDirectory()) return fs.realpathSync(b.path);
  if (!st.isFile() || !isTarArchive(b.path)) {
    throw new UsageError(`branch '${b.path}' is not a directory${st.isFile() ? " nor a tar archive" : ""}`);
  }
  if (b.mode === "rw") {
    throw new UsageError(`branch '${b.path}' is a tar archive, which can only be read-only ('${b.path}=ro')`);
  }
  return fs.realpathSync(b.path);
}

function statOf(p: string, what: string): fs.Stats {
  try {
    return fs.statSync(p);
  } catch {
    throw new UsageError(`${what} '${p}' does not exist`);
  }
}

function realDir(p: string, what: string): string {
  const st = statOf(p, what);
  if (!st.isDirectory()) throw new UsageError(`${what} '${p}' is not a directory`);
  return fs.realpathSync(p);
}

function isInside(child: string, parent: string): boolean {
  return child.startsWith(parent.endsWith("/") ? parent : `${parent}/`);
}

function isMountpoint(real: string): boolean {
  return mountsAt(real).length > 0;
}
