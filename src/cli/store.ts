/**
 * Image store commands: `load`, `images`, `rmi`, `ps`, `rm`, `commit`, `save` (the logic lives in
 * src/image/store; `run --image` is in run.ts).
 *
 * Invariants: bad input is a UsageError (one line, exit 2, the store unchanged); stdout carries only the
 * command's result (names and IDs, tables, an archive); progress goes to stderr, only on a terminal and
 * never with --quiet; warnings are lines `unionfs-ts: warning: …` on stderr.
 */
import * as fs from "node:fs";
import { ImageStore, shortId } from "../image/store";
import { UsageError } from "../errors";
import { withProgress } from "./image";

function out(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

/** `load` and `commit` unpack layers: overlay-format whiteouts (0/0 devices, `trusted.` xattrs) need root. */
function checkRoot(verb: string): void {
  if (process.geteuid?.() !== 0) {
    throw new UsageError(`${verb} must be run as root (the store's layers hold overlay-format whiteouts)`);
  }
}

export function openStore(dir: string | undefined): ImageStore {
  return new ImageStore({
    ...(dir === undefined ? {} : { dir }),
    onWait: (l) => process.stderr.write(`unionfs-ts: ${l}\n`),
  });
}

/** 1.23MB, as `docker images` shows sizes (powers of 1000). */
export function humanSize(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let n = bytes;
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u += 1;
  }
  return `${u === 0 ? n : Number(n.toPrecision(3))}${units[u]}`;
}

/** "3 minutes ago", as docker shows times. */
export function ago(iso: string | undefined, now = Date.now()): string {
  const t = iso === undefined ? NaN : Date.parse(iso);
  if (Number.isNaN(t)) return "unknown";
  const s = Math.max(0, Math.round((now - t) / 1000));
  const steps: Array<[number, string]> = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [365, "day"],
    [Infinity, "year"],
  ];
  let v = s;
  for (const [per, unit] of steps) {
    if (v < per) return v === 0 && unit === "second" ? "just now" : `${v} ${unit}${v === 1 ? "" : "s"} ago`;
    v = Math.floor(v / per);
  }
  return "long ago";
}

/** Columns padded to their widest cell, three spaces apart. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("   ")}\n`)
    .join("");
}

/** `load [-i FILE|DIR] [-q]`: stdin when -i is omitted (never a terminal). */
export async function loadCommand(
  dir: string | undefined,
  flags: { input?: string; quiet?: boolean },
): Promise<number> {
  checkRoot("load");
  let input: { file: string } | { dir: string } | { stream: NodeJS.ReadStream; label: string };
  if (flags.input === undefined || flags.input === "-") {
    if (process.stdin.isTTY)
      throw new UsageError(
        "refusing to read an image archive from a terminal: use -i FILE or redirect stdin",
      );
    input = { stream: process.stdin, label: "stdin" };
  } else if (fs.statSync(flags.input, { throwIfNoEntry: false })?.isDirectory()) input = { dir: flags.input };
  else input = { file: flags.input };
  const store = openStore(dir);
  const loaded = await withProgress(`load ${flags.input ?? "stdin"}`, flags.quiet, (progress, onWarning) =>
    store.load(input, { onWarning, progress }),
  );
  const lines = loaded.flatMap((l) => [
    ...l.names.map((n) => `Loaded image: ${n}`),
    `Loaded image ID: ${l.id}`,
  ]);
  await out(`${lines.join("\n")}\n`);
  return 0;
}

/** `images [-q] [--no-trunc]` */
export async function imagesCommand(
  store: string | undefined,
  flags: { quiet?: boolean; noTrunc?: boolean },
): Promise<number> {
  const images = await openStore(store).images();
  const id = (d: string): string => (flags.noTrunc === true ? d : shortId(d));
  if (flags.quiet === true) {
    await out(images.map((i) => `${id(i.id)}\n`).join(""));
    return 0;
  }
  const rows = [["NAME", "IMAGE ID", "CREATED", "SIZE", "LAYERS"]];
  for (const i of images) {
    for (const name of i.names.length > 0 ? i.names : ["<none>"]) {
      rows.push([name, id(i.id), ago(i.created), humanSize(i.size), String(i.layers)]);
    }
  }
  await out(table(rows));
  return 0;
}

/** `rmi IMAGE…` */
export async function rmiCommand(store: string | undefined, refs: string[]): Promise<number> {
  const s = openStore(store);
  for (const ref of refs) {
    const r = await s.removeImage(ref);
    const lines = [
      ...r.untagged.map((n) => `Untagged: ${n}`),
      ...(r.deleted === undefined ? [] : [`Deleted: ${r.deleted}`]),
    ];
    await out(`${lines.join("\n")}\n`);
  }
  return 0;
}

/** `ps [-a] [-q]`: running containers; with -a also kept ones that ended. */
export async function psCommand(
  store: string | undefined,
  flags: { all?: boolean; quiet?: boolean },
): Promise<number> {
  const all = (await openStore(store).containers()).filter((c) => flags.all === true || c.running);
  if (flags.quiet === true) {
    await out(all.map((c) => `${shortId(c.id)}\n`).join(""));
    return 0;
  }
  const rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAME"]];
  for (const c of all) {
    const status = c.running ? `Running (pid ${c.pid})` : c.keep ? "Exited" : "Exited (not kept)";
    const command = c.command.join(" ");
    rows.push([
      shortId(c.id),
      c.imageName,
      command.length > 30 ? `${command.slice(0, 29)}…` : command,
      ago(c.created),
      status,
      c.name,
    ]);
  }
  await out(table(rows));
  return 0;
}

/** `rm CONTAINER…` */
export async function rmCommand(store: string | undefined, refs: string[]): Promise<number> {
  const s = openStore(store);
  for (const ref of refs) {
    const c = await s.removeContainer(ref);
    await out(`${c.name}\n`);
  }
  return 0;
}

/** `commit [-m MESSAGE] CONTAINER [IMAGE]`: prints the new image's ID. */
export async function commitCommand(
  store: string | undefined,
  container: string,
  image: string | undefined,
  flags: { message?: string; quiet?: boolean; exclude?: string[] },
): Promise<number> {
  checkRoot("commit");
  const s = openStore(store);
  const id = await withProgress(`commit ${container}`, flags.quiet, (progress, onWarning) =>
    s.commit(container, image, {
      onWarning,
      progress,
      ...(flags.message === undefined ? {} : { message: flags.message }),
      ...(flags.exclude === undefined ? {} : { exclude: flags.exclude }),
    }),
  );
  await out(`${id}\n`);
  return 0;
}

/** `save IMAGE [-o FILE] [-q]`: an oci-archive to FILE or stdout (never a terminal). */
export async function saveCommand(
  store: string | undefined,
  ref: string,
  flags: { output?: string; quiet?: boolean },
): Promise<number> {
  if (flags.output === undefined && process.stdout.isTTY) {
    throw new UsageError("refusing to write an archive to a terminal: use -o FILE or redirect stdout");
  }
  const output = flags.output === undefined ? { stream: process.stdout } : { file: flags.output };
  const s = openStore(store);
  await withProgress(`save ${ref}`, flags.quiet, (progress, onWarning) =>
    s.save(ref, output, { onWarning, progress }),
  );
  return 0;
}
