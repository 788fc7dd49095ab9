/**
 * `unionfs-ts run [options] LAYERS -- COMMAND [ARGS…]`: a tiny container whose root is the union.
 *
 * Invariants: every mistake the user can make (bad arguments, not root, a missing layer, --mounted on
 * something that is not a unionfs-ts mount) is found before anything is created or mounted, and is one
 * `UsageError` line. The work itself is in src/mountns/container.ts.
 */
import type { Command } from "commander";
import * as nodePath from "node:path";
import { UsageError } from "../errors";
import { checkBranches, parseBranches } from "../unionfs/branches";
import { runContainer } from "../mountns/container";
import { withInitLayer } from "../mountns/initlayer";
import { MAX_READONLY_BRANCHES, type BranchSpec } from "../unionfs/config";
import { parseRunArgs, type RunOptions } from "../mountns/options";
import { overlay2MountArgs } from "../image/overlay2";
import { openStore } from "./store";
import { canonicalMountpoint, FS_TYPE } from "../fuse";
import { mountsAt } from "../sys/mountinfo";

/**
 * The arguments after `run` exactly as typed. Commander drops the `--` that separates LAYERS from
 * COMMAND, so they are taken from the raw argv of the root command.
 */
export function rawRunArgs(cmd: Command): string[] {
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? process.argv.slice(2);
  const at = raw.indexOf(cmd.name());
  return at < 0 ? [] : raw.slice(at + 1);
}

export async function runCommand(args: readonly string[], store?: string): Promise<number> {
  const opts = parseRunArgs(args);
  if (process.geteuid?.() !== 0) {
    throw new UsageError("run must be started as root (it mounts filesystems and creates namespaces)");
  }
  if (opts.image !== undefined) return runImage(opts, opts.store ?? store);
  let mountpoint: string | undefined;
  if (opts.mounted !== undefined) {
    mountpoint = canonicalMountpoint(opts.mounted);
    const types = mountsAt(mountpoint).map((e) => e.fsType);
    if (types.length === 0) throw new UsageError(`'${opts.mounted}' is not mounted`);
    if (types[types.length - 1] !== FS_TYPE) {
      throw new UsageError(`'${opts.mounted}' is a ${types[types.length - 1]} mount, not unionfs-ts`);
    }
  } else {
    const branches = parseBranches(opts.layers ?? "", process.cwd());
    checkBranches(branches);
    if (withInitLayer(branches, "/").filter((b) => b.mode !== "rw").length > MAX_READONLY_BRANCHES) {
      throw new UsageError(
        `too many layers: run adds its init layer, so at most ${MAX_READONLY_BRANCHES - 1} read-only ones`,
      );
    }
  }
  return runContainer({ opts, cliPath: nodePath.join(__dirname, "main.js"), mountpoint });
}

/**
 * `run --image IMAGE [--name NAME] [--keep]`: a container of the store. Its image's layers and its new
 * writable layer are stacked, none copied, with overlay-format whiteouts and the layer's own work dir
 * (as `mount-overlay2` mounts them); run builds the init layer in the container's `<id>-init` layer.
 * Without --keep the container is removed when COMMAND ends.
 */
async function runImage(opts: RunOptions, storeDir: string | undefined): Promise<number> {
  const store = openStore(storeDir);
  const c = await store.createContainer(opts.image as string, {
    ...(opts.name === undefined ? {} : { name: opts.name }),
    command: opts.command,
    keep: opts.keep,
  });
  try {
    const m = store.containerMount(c);
    const { branchList, options } = overlay2MountArgs({
      branches: [{ path: m.rw, mode: "rw" }, ...m.layers.map((path): BranchSpec => ({ path, mode: "ro" }))],
      workdir: m.workdir,
    });
    return await runContainer({
      opts: { ...opts, layers: branchList, keep: false },
      cliPath: nodePath.join(__dirname, "main.js"),
      mountOptions: options,
      initLayer: m.init,
    });
  } finally {
    await store.containerEnded(c);
    if (opts.keep && (opts.name === undefined || opts.verbose))
      process.stderr.write(`unionfs-ts: container '${c.name}' kept (unionfs-ts commit ${c.name} IMAGE)\n`);
  }
}
