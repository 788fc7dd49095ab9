/**
 * Layer commands: `diff`, `export`, `import`, `mount-overlay2` (the logic lives in src/image).
 *
 * Invariants: bad input is a UsageError (one line, exit 2, nothing written: `export -o` removes a
 * partial file, `import` removes what it unpacked); warnings are lines `unionfs-ts: warning: …` on
 * stderr; stdout carries only the command's output (diff lines, the tarball).
 */
import * as fs from "node:fs";
import { checkOutsideLayer, diffLayer, exportLayer, formatChanges, importLayer } from "../image";
import { overlay2MountArgs, resolveOverlay2 } from "../image/overlay2";
import { Progress } from "../image/progress";
import { UsageError } from "../errors";
import { mountCommand, type MountFlags } from "./mount";
import { splitOptionList, whiteoutFormat } from "./options";

function warn(message: string): void {
  process.stderr.write(`unionfs-ts: warning: ${message}\n`);
}

function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

/** `diff UPPER [--lower L1:L2:…] [--exclude GLOB]… [--all]` */
export async function diffCommand(
  upper: string,
  flags: { lower?: string; exclude?: string[]; all?: boolean },
): Promise<number> {
  let lowers: string[] | undefined;
  if (flags.lower !== undefined) {
    lowers = flags.lower.split(":");
    const empty = lowers.findIndex((l) => l.length === 0);
    if (empty >= 0) throw new UsageError(`empty directory at position ${empty + 1} of --lower`);
  }
  await write(formatChanges(diffLayer(upper, lowers, { exclude: flags.exclude, all: flags.all })));
  return 0;
}

/**
 * Runs `work` with a progress line on stderr (a TTY, not --quiet) that warnings print above. Should the
 * work ever wait for something that cannot come (Node would then exit 0 with half an archive), the
 * process fails instead: one line, exit 1, `onStall` run (remove a partial output).
 */
export async function withProgress<T>(
  label: string,
  quiet: boolean | undefined,
  work: (progress: Progress, onWarning: (message: string) => void) => Promise<T>,
  onStall: () => void = () => undefined,
): Promise<T> {
  const progress = new Progress(label, { quiet });
  const onWarning = (message: string): void => {
    if (progress.enabled) progress.log(`unionfs-ts: warning: ${message}`);
    else warn(message);
  };
  const stalled = (): void => {
    progress.done(false);
    onStall();
    process.stderr.write(`unionfs-ts: ${label} stopped before it finished (nothing left to wait for)\n`);
    process.exitCode = 1;
  };
  process.once("beforeExit", stalled);
  try {
    const result = await work(progress, onWarning);
    progress.done();
    return result;
  } catch (err) {
    progress.done(false);
    throw err;
  } finally {
    process.removeListener("beforeExit", stalled);
  }
}

/** `export [-o FILE] [-q] [--exclude GLOB]… UPPER`: the tarball goes to FILE or stdout (not a terminal). */
export async function exportCommand(
  upper: string,
  flags: { output?: string; quiet?: boolean; exclude?: string[] },
): Promise<number> {
  const exclude = flags.exclude;
  if (flags.output === undefined) {
    if (process.stdout.isTTY) {
      throw new UsageError("refusing to write a tarball to a terminal: use -o FILE or redirect stdout");
    }
    await withProgress(`export ${upper}`, flags.quiet, (progress, onWarning) =>
      exportLayer(upper, process.stdout, { onWarning, end: false, progress, exclude }),
    );
    return 0;
  }
  const output = flags.output;
  checkOutsideLayer(output, upper);
  const out = fs.createWriteStream(output, { mode: 0o644 });
  try {
    await withProgress(
      `export ${upper}`,
      flags.quiet,
      (progress, onWarning) => exportLayer(upper, out, { onWarning, progress, exclude }),
      () => fs.rmSync(output, { force: true }),
    );
  } catch (err) {
    out.destroy();
    fs.rmSync(output, { force: true });
    throw err;
  }
  return 0;
}

/** `import [--format aufs|overlay] [--quiet] LAYER.tar|- DIR` */
export async function importCommand(
  file: string,
  dir: string,
  flags: { format?: string; quiet?: boolean },
): Promise<number> {
  const format = whiteoutFormat(flags.format ?? "aufs", "--format");
  await withProgress(`import ${file === "-" ? "standard input" : file}`, flags.quiet, (progress, onWarning) =>
    importLayer(file, dir, { format, onWarning, progress }),
  );
  return 0;
}

/** `mount-overlay2 [-f] [-o OPT]… ROOT ID MOUNTPOINT`: the layer's chain through the normal mount path. */
export async function mountOverlay2Command(
  root: string,
  id: string,
  mountpoint: string,
  flags: MountFlags,
): Promise<number> {
  const readOnly = flags.options.flatMap(splitOptionList).includes("ro");
  const { branchList, options } = overlay2MountArgs(resolveOverlay2(root, id, readOnly));
  return mountCommand([branchList, mountpoint], { ...flags, options: [...options, ...flags.options] });
}
