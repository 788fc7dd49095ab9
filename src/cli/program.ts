/**
 * The `unionfs-ts` command line's parser and commands (main.ts loads it for every command but a plain
 * or shared background mount).
 *
 * Invariants: bad input gives exactly one line on stderr, prefixed `unionfs-ts:`, and a non-zero exit;
 * a stack trace is printed only with --verbose or for errors that are not the user's.
 */
import { Command, CommanderError } from "commander";
import { errorReport } from "./report";
import { unknownCommand } from "./typos";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require("../../../package.json") as { version: string };

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function buildProgram(setCode: (code: number) => void): Command {
  const program = new Command("unionfs-ts")
    .description("A union filesystem served through FUSE: stack directories, top branch wins.")
    .version(version)
    .option("--store <dir>", "the image store (default $UNIONFS_TS_STORE, else /var/lib/unionfs-ts)")
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`unionfs-ts: ${str.replace(/^error: /, "")}`) });

  program
    .command("mount", { isDefault: true })
    .description(
      "merge BRANCHES (top first, e.g. A:B or A=rw:B=ro) on MOUNTPOINT; or -o lowerdir=… MOUNTPOINT",
    )
    .argument(
      "[branches]",
      "branch list, top first: DIR[=rw|ro|ro+wh|rr][:DIR…] (a ':', '=' or '\\' in a name as '\\:', '\\=', '\\\\'; only a name with lowerdir=)",
    )
    .argument("[mountpoint]", "an existing directory")
    .option("-f, --foreground", "serve in the foreground until unmounted")
    .option(
      "-o, --options <list>",
      "mount options (repeatable): workdir=DIR, whiteout=aufs|overlay, passthrough=auto|lower|off, timeout=SECONDS, io_uring (FUSE over io_uring, once root turned " +
        "/sys/module/fuse/parameters/enable_uring on), " +
        "debug, log=FILE (the daemon's log), pidfile=FILE, shared; generic mount flags (ro, nosuid, nodev, noexec, " +
        "noatime, relatime, strictatime, sync, dirsync, …); or the fuse-overlayfs " +
        "set lowerdir=L1:L2,upperdir=U,workdir=W,uidmapping=…,gidmapping=…,squash_to_uid=…,noxattrs=1,fsync=0",
      collect,
    )
    .option(
      "-d, --debug",
      "log every request (same as -o debug): to stderr, in the foreground (as -f), unless -o log=FILE",
    )
    .option("--transport <name>", "how to serve FUSE: auto (default: kernel when root), kernel, fuse-native")
    .option("-v, --verbose", "say more")
    .action(async (first: string | undefined, second: string | undefined, flags) => {
      const positionals = [first, second].filter((a): a is string => a !== undefined);
      flags.options ??= [];
      if (flags.debug) flags.options.push("debug");
      const { mountCommand } = await import("./mount");
      setCode(await mountCommand(positionals, flags));
    });

  program
    .command("umount")
    .description("unmount a unionfs-ts mount (its daemon then exits)")
    .argument("<mountpoint>")
    .option("-l, --lazy", "detach even when files are open")
    .action(async (mountpoint: string, flags) => {
      const { umountCommand } = await import("./umount");
      setCode(umountCommand(mountpoint, flags));
    });

  // `run`: a tiny container (src/cli/run.ts, src/mountns). Its own parser reads the raw arguments, since
  // commander drops the `--` before COMMAND; the options below are declared for --help.
  program
    .command("run")
    .description("run COMMAND in new namespaces whose root is the union of LAYERS (a tiny container)")
    .usage("[options] LAYERS -- COMMAND [ARGS…]  |  run [options] --mounted MOUNTPOINT -- COMMAND [ARGS…]")
    .argument("[args...]", "LAYERS (top first, as for mount), then -- and COMMAND with its arguments")
    .option("--mounted <mountpoint>", "use this existing unionfs-ts mount (no mount, no unmount)")
    .option("--hostname <name>", "set this hostname in a new UTS namespace")
    .option("--workdir <dir>", "working directory inside the container (default /)")
    .option("-e, --env <K=V>", "add to the environment (repeatable; default PATH, HOME=/root, TERM)", collect)
    .option("--pid=<mode>", "private (default: new PID namespace, COMMAND is PID 1) or host")
    .option("--sys", "mount /sys read-only")
    .option("--image <image>", "run an image of the store (its layers, an init layer and a new rw layer)")
    .option("--name <name>", "with --image: the container's name")
    .option("--keep", "leave the union mounted afterwards; with --image: keep the container for commit")
    .option("-v, --verbose", "say each setup step")
    .allowUnknownOption()
    .action(async (_args: string[], _flags: unknown, cmd: Command) => {
      const { rawRunArgs, runCommand } = await import("./run");
      setCode(await runCommand(rawRunArgs(cmd), storeOf(cmd)));
    });

  // `diff`: what a layer changes (src/cli/image.ts, src/image).
  program
    .command("diff")
    .description("list what layer UPPER changes, as docker diff: A added, C changed, D deleted")
    .argument("<upper>", "the layer directory (a union's rw branch)")
    .option("--lower <dirs>", "the layers below, top first (L1:L2:…), to tell C from A")
    .option("--exclude <glob>", "leave out paths matching GLOB, from the layer root (repeatable)", collect)
    .option("--all", "also list a container engine's mount points (/etc/hosts, /run/.containerenv, …)")
    .action(async (upper: string, flags: { lower?: string; exclude?: string[]; all?: boolean }) => {
      const { diffCommand } = await import("./image");
      setCode(await diffCommand(upper, flags));
    });

  // `export`: a layer as an OCI layer tarball (src/cli/image.ts, src/image).
  program
    .command("export")
    .description("write layer UPPER as an OCI layer tarball (whiteouts as .wh. entries) to stdout or FILE")
    .argument("<upper>", "the layer directory (a union's rw branch)")
    .option("-o, --output <file>", "write to FILE instead of stdout")
    .option("--exclude <glob>", "leave out paths matching GLOB, from the layer root (repeatable)", collect)
    .option("-q, --quiet", "no progress line (shown on a terminal's stderr otherwise)")
    .action(async (upper: string, flags: { output?: string; quiet?: boolean; exclude?: string[] }) => {
      const { exportCommand } = await import("./image");
      setCode(await exportCommand(upper, flags));
    });

  // `import`: unpack an OCI layer tarball into a branch directory (src/cli/image.ts, src/image).
  program
    .command("import")
    .description(
      "unpack an OCI layer tarball (plain, gzip or zstd) into DIR (new or empty), usable as a branch",
    )
    .argument("<layer.tar>", "the layer tarball; - (or /dev/stdin) reads it from standard input")
    .argument("<dir>", "target directory, created when missing; must be empty")
    .option(
      "--format <format>",
      "whiteouts on disk: aufs (.wh. files, default) or overlay (0/0 devices, xattrs)",
    )
    .option("-q, --quiet", "no progress line (shown on a terminal's stderr otherwise)")
    .action(async (file: string, dir: string, flags: { format?: string; quiet?: boolean }) => {
      const { importCommand } = await import("./image");
      setCode(await importCommand(file, dir, flags));
    });

  // `mount-overlay2`: mount a layer of Docker's overlay2 layout with its lowers (src/image/overlay2.ts).
  program
    .command("mount-overlay2")
    .description("mount layer ID of an overlay2 ROOT (e.g. /var/lib/docker/overlay2) with its lower chain")
    .argument("<root>", "the overlay2 directory")
    .argument("<id>", "the layer id (a directory of ROOT); its diff/ is writable when it has work/")
    .argument("<mountpoint>", "an existing directory")
    .option("-f, --foreground", "serve in the foreground until unmounted")
    .option("-o, --options <list>", "mount options as for mount (repeatable), e.g. ro", collect)
    .option("-v, --verbose", "say more")
    .action(async (root: string, id: string, mountpoint: string, flags) => {
      const { mountOverlay2Command } = await import("./image");
      setCode(await mountOverlay2Command(root, id, mountpoint, { ...flags, options: flags.options ?? [] }));
    });

  // `install-helper`: the explicit step that lets mount(8) and /etc/fstab find this installation.
  program
    .command("install-helper")
    .description(
      "make mount(8) run this installation for -t fuse.unionfs-ts: writes /sbin/mount.fuse.unionfs-ts",
    )
    .option("--dir <dir>", "write the helper into DIR instead of /sbin (mount(8) looks only in /sbin)")
    .option("--force", "replace (or remove) a helper of another installation or another file")
    .option("--uninstall", "remove the helper this installation wrote")
    .action(async (flags: { dir?: string; force?: boolean; uninstall?: boolean }) => {
      const { installHelperCommand } = await import("./install-helper");
      setCode(installHelperCommand(flags));
    });

  addStoreCommands(program, setCode);
  return program;
}

/** The global --store option, wherever it was given. */
function storeOf(cmd: Command): string | undefined {
  return (cmd.optsWithGlobals() as { store?: string }).store;
}

/** `load`, `images`, `rmi`, `ps`, `rm`, `commit`, `save` (src/cli/store.ts, src/image/store). */
function addStoreCommands(program: Command, setCode: (code: number) => void): void {
  const store = (): Promise<typeof import("./store")> => import("./store");
  program
    .command("load")
    .description(
      "load the images of an image archive (docker-archive, oci-archive) or OCI layout into the store",
    )
    .option("-i, --input <file>", "the archive file or layout directory (default: stdin)")
    .option("-q, --quiet", "no progress")
    .action(async (flags, cmd: Command) => setCode(await (await store()).loadCommand(storeOf(cmd), flags)));
  program
    .command("images")
    .description("list the store's images: names, IDs, sizes")
    .option("-q, --quiet", "only IDs")
    .option("--no-trunc", "full IDs")
    .action(async (flags: { quiet?: boolean; trunc?: boolean }, cmd: Command) =>
      setCode(
        await (await store()).imagesCommand(storeOf(cmd), { ...flags, noTrunc: flags.trunc === false }),
      ),
    );
  program
    .command("rmi")
    .description("remove images (by name: the name; by ID or last name: the image and its unused layers)")
    .argument("<image...>")
    .action(async (refs: string[], _flags, cmd: Command) =>
      setCode(await (await store()).rmiCommand(storeOf(cmd), refs)),
    );
  program
    .command("ps")
    .description("list running containers of the store (-a: kept ones too)")
    .option("-a, --all", "also containers that ended")
    .option("-q, --quiet", "only IDs")
    .action(async (flags, cmd: Command) => setCode(await (await store()).psCommand(storeOf(cmd), flags)));
  program
    .command("rm")
    .description("remove kept containers (their writable and init layers)")
    .argument("<container...>")
    .action(async (refs: string[], _flags, cmd: Command) =>
      setCode(await (await store()).rmCommand(storeOf(cmd), refs)),
    );
  program
    .command("commit")
    .description("a new image from a kept container's writable layer on top of its image")
    .argument("<container>")
    .argument("[image]", "the new image's name, e.g. localhost/app:2")
    .option("-m, --message <text>", "the history entry's comment")
    .option("--exclude <glob>", "leave out paths matching GLOB, from the layer root (repeatable)", collect)
    .option("-q, --quiet", "no progress")
    .action(async (container: string, image: string | undefined, flags, cmd: Command) =>
      setCode(await (await store()).commitCommand(storeOf(cmd), container, image, flags)),
    );
  program
    .command("save")
    .description("write an image of the store as an oci-archive (for podman load, skopeo)")
    .argument("<image>")
    .option("-o, --output <file>", "write to FILE instead of stdout")
    .option("-q, --quiet", "no progress")
    .action(async (ref: string, flags, cmd: Command) =>
      setCode(await (await store()).saveCommand(storeOf(cmd), ref, flags)),
    );
}

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => (code = c));
  const typo = unknownCommand(argv, [...program.commands.map((c) => c.name()), "help"]);
  if (typo !== undefined) {
    process.stderr.write(`unionfs-ts: ${typo}\n`);
    return 2;
  }
  const verbose = argv.includes("-v") || argv.includes("--verbose");
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    return reportError(err, verbose);
  }
}

function reportError(err: unknown, verbose: boolean): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  const { status, text } = errorReport(err, verbose);
  process.stderr.write(text);
  return status;
}
