/**
 * The ways a union is mounted, for tests that must hold in each: the branch list (`U:L MP`), the
 * fuse-overlayfs form (`-o lowerdir=L,upperdir=U,workdir=W MP`) and mount(8) (`mount -t fuse.unionfs-ts
 * U:L MP`, with this build's helper: mount8.ts), over a fresh tree of branches.
 *
 * Invariant: every mount made here is taken down by the Cleanup it was given, whatever the test does.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { mountThroughMount8 } from "./mount8";
import { cliMount, type Cleanup } from "./unionfs";

export interface BranchTree {
  root: string;
  upper: string;
  lower: string;
  work: string;
  mnt: string;
}

/** A fresh temp dir holding empty `upper`, `lower`, `work` and `mp` (mode 0755: other users may enter). */
export function branchTree(t: Cleanup, label: string): BranchTree {
  const root = t.tempDir(label);
  const d = (n: string): string => path.join(root, n);
  for (const n of ["upper", "lower", "work", "mp"]) fs.mkdirSync(d(n), { mode: 0o755 });
  return { root, upper: d("upper"), lower: d("lower"), work: d("work"), mnt: d("mp") };
}

export interface MountForm {
  name: string;
  /** Mounts `tr` on `tr.mnt` with the mount options `options` (e.g. ["nosuid", "passthrough=off"]). */
  mount(t: Cleanup, tr: BranchTree, options: readonly string[]): Promise<void>;
}

export const MOUNT_FORMS: readonly MountForm[] = [
  {
    name: "U:L MP",
    mount: (t, tr, o) =>
      cliMount(t, [...o.flatMap((x) => ["-o", x]), `${tr.upper}:${tr.lower}`, tr.mnt], tr.mnt),
  },
  {
    name: "-o lowerdir=L,upperdir=U,workdir=W MP",
    mount: (t, tr, o) =>
      cliMount(
        t,
        [
          "-o",
          [`lowerdir=${tr.lower}`, `upperdir=${tr.upper}`, `workdir=${tr.work}`, ...o].join(","),
          tr.mnt,
        ],
        tr.mnt,
      ),
  },
  {
    name: "mount -t fuse.unionfs-ts U:L MP",
    mount: async (t, tr, o) =>
      void (await mountThroughMount8(t, tr.root, `${tr.upper}:${tr.lower}`, tr.mnt, o)),
  },
];
