/**
 * The three places a POSIX behaviour case runs:
 *
 *   - "plain": one ordinary directory holding the lower tree with the upper tree written over it. Every
 *     case must pass here: it proves the case tests POSIX, not a union quirk.
 *   - "overlayfs": kernel overlayfs over the same branches (the reference union, pinned options).
 *   - "unionfs-ts": our mount over the same branches (A = upper, writable; B = lower).
 *
 * Files a case places in the lower layer really are in the lower branch on the union targets, so writes
 * to them exercise copy-up.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { forceUnmount, mountKernelOverlay, mountsUnder, run } from "../../helpers/mounts";
import { writeTree, type TreeSpec } from "../../helpers/tmp";
import { cliBuilt, mountUnion, type Cleanup, type UnionMount } from "../../helpers/unionfs";

export const TARGETS = ["plain", "overlayfs", "unionfs-ts"] as const;
export type TargetName = (typeof TARGETS)[number];

export interface Layout {
  lower?: TreeSpec;
  upper?: TreeSpec;
  /** Runs on the lower branch (plain: the one directory) after `lower` is written: owners, xattrs, etc. */
  prepareLower?: (dir: string) => void | Promise<void>;
  /** Runs on the upper branch (plain: the one directory) after `upper` is written. */
  prepareUpper?: (dir: string) => void | Promise<void>;
  /** Put the writable branch (and overlayfs's work dir) on a small tmpfs of its own. */
  upperOnTmpfs?: boolean;
}

export interface Env {
  readonly target: TargetName;
  /** Where the case works: the mountpoint, or the plain directory. */
  readonly root: string;
  /** `root` joined with `parts`. */
  at(...parts: string[]): string;
  /** The writable branch (plain: `root`). */
  readonly upperDir: string;
  /** The lower branch (plain: `root`). */
  readonly lowerDir: string;
  /** Unmounts and mounts the same branches again (plain: nothing to do). */
  remount(): Promise<void>;
}

/** A TreeSpec made by file()/dir()/symlink() carries a symbol key; a plain object is a directory. */
function isPlainDir(e: unknown): e is TreeSpec {
  return (
    typeof e === "object" && e !== null && !Buffer.isBuffer(e) && Object.getOwnPropertySymbols(e).length === 0
  );
}

function mkdir755(p: string): string {
  fs.mkdirSync(p);
  fs.chmodSync(p, 0o755);
  return p;
}

function mountTmpfs(t: Cleanup, dir: string): void {
  t.defer(`unmount tmpfs ${dir}`, () => forceUnmount(dir));
  const r = run("mount", ["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", dir]);
  if (r.status !== 0) throw new Error(`mount -t tmpfs failed: ${r.stderr.trim()}`);
}

/** Builds `layout` for `target` inside a fresh temp dir; everything is undone by `t` after the test. */
export async function setUpTarget(t: Cleanup, target: TargetName, layout: Layout): Promise<Env> {
  const base = t.tempDir(`posix-${target}`);
  // Trees deeper than PATH_MAX defeat fs.rmSync: GNU rm removes them first (never through a mount).
  t.defer(`rm -rf ${base}`, () => {
    if (mountsUnder(base).length === 0) run("rm", ["-rf", "--one-file-system", base]);
  });
  const env = (root: string, upperDir: string, lowerDir: string, remount: () => Promise<void>): Env => ({
    target,
    root,
    at: (...parts: string[]) => path.join(root, ...parts),
    upperDir,
    lowerDir,
    remount,
  });

  if (target === "plain") {
    const root = mkdir755(path.join(base, "dir"));
    writeTree(root, layout.lower ?? {});
    await layout.prepareLower?.(root);
    // Upper entries replace lower ones of the same name, as the union would show them.
    const upper = layout.upper ?? {};
    for (const name of Object.keys(upper)) {
      if (!isPlainDir(upper[name])) fs.rmSync(path.join(root, name), { recursive: true, force: true });
    }
    writeTreeOver(root, upper);
    await layout.prepareUpper?.(root);
    return env(root, root, root, async () => {});
  }

  const lower = mkdir755(path.join(base, "lower"));
  const top = mkdir755(path.join(base, "top"));
  if (layout.upperOnTmpfs) mountTmpfs(t, top);
  const upper = mkdir755(path.join(top, "upper"));
  const mnt = mkdir755(path.join(base, "mnt"));
  writeTree(lower, layout.lower ?? {});
  await layout.prepareLower?.(lower);
  writeTree(upper, layout.upper ?? {});
  await layout.prepareUpper?.(upper);

  if (target === "overlayfs") {
    const work = mkdir755(path.join(top, "work"));
    const mount = () => mountKernelOverlay({ lower: [lower], upper, work, mnt });
    t.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
    let ovl = mount();
    return env(mnt, upper, lower, async () => {
      ovl.unmount();
      ovl = mount();
    });
  }

  if (!cliBuilt()) throw new Error("the unionfs-ts CLI is not built (npx tsc -p .)");
  const branches = `${upper}:${lower}`;
  // The guard runs last: whatever mount is current then, nothing stays mounted.
  t.defer(`unmount ${mnt}`, () => forceUnmount(mnt));
  let current: UnionMount | undefined = await mountUnion(branches, mnt);
  t.defer(`unmount ${mnt} and stop its daemon`, async () => {
    await current?.unmount();
  });
  return env(mnt, upper, lower, async () => {
    await current?.unmount();
    current = undefined;
    current = await mountUnion(branches, mnt);
  });
}

/** writeTree that merges into directories which already exist (for the plain target's upper tree). */
function writeTreeOver(root: string, spec: TreeSpec): void {
  for (const [name, e] of Object.entries(spec)) {
    const p = path.join(root, name);
    if (isPlainDir(e) && fs.existsSync(p) && fs.lstatSync(p).isDirectory()) writeTreeOver(p, e);
    else writeTree(root, { [name]: e });
  }
}
