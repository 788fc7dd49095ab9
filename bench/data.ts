/**
 * The layer set every system mounts, built once and cached (`DATA/full` or `DATA/quick`).
 *
 *   main/layer0 … layer3   4 lower layers (layer0 = bottom). A sample of /usr/{share,include,bin,lib}
 *                          (quick: /usr/include), each file or symlink put in one layer by a hash of its
 *                          path, so directories exist in several layers and merge; ~3 % of the entries
 *                          have a second copy in a higher layer that shadows them.
 *   main/layer0/bench/big-1g.bin    the big file (1 GiB; quick: 16 MiB), random bytes, bottom layer
 *   main/layer1/bench/mid-256m.bin  the copy-up file (256 MiB; quick: 4 MiB), a middle layer
 *   main/manifest.json     what the merged view must show (files, entries, …)
 *   deep/l000 … l127       128 lower layers (l000 = bottom): with the writable upper on top, the deepest
 *                          stack unionfs-ts and overlay2 mount. Each layer has the same directories d000…,
 *                          each with one file of its own; the bottom layer also holds N files (hit.txt
 *                          lists them); miss.txt lists as many paths that exist in no layer.
 *
 * Invariants:
 * - A data set is complete when `.complete` holds the expected version string; anything else is rebuilt.
 * - It is built under a temporary name and renamed into place, so a reader never sees half of one and two
 *   concurrent builders do not mix their files (the loser throws its copy away).
 * - Nothing is ever deleted through a mount: a data dir with something mounted below it is refused.
 * - No set-uid or set-gid bit is copied from /usr.
 */
import { spawnSync } from "node:child_process";
import { createCipheriv, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { alive, mountsUnder } from "./proc";

export interface DataParams {
  name: "full" | "quick";
  sources: string[];
  targetFiles: number;
  maxBytes: number;
  maxFileBytes: number;
  bigBytes: number;
  midBytes: number;
  layers: number;
  deepLayers: number;
  deepDirs: number;
  deepFiles: number;
}

const MiB = 1024 * 1024;

export const FULL: DataParams = {
  name: "full",
  sources: ["/usr/share", "/usr/include", "/usr/bin", "/usr/lib"],
  targetFiles: 50_000,
  maxBytes: 800 * MiB,
  maxFileBytes: 2 * MiB,
  bigBytes: 1024 * MiB,
  midBytes: 256 * MiB,
  layers: 4,
  deepLayers: 128,
  deepDirs: 100,
  deepFiles: 10_000,
};

export const QUICK: DataParams = {
  name: "quick",
  sources: ["/usr/include"],
  targetFiles: 1_000,
  maxBytes: 32 * MiB,
  maxFileBytes: 1 * MiB,
  bigBytes: 16 * MiB,
  midBytes: 4 * MiB,
  layers: 4,
  deepLayers: 128,
  deepDirs: 5,
  deepFiles: 500,
};

export interface Manifest {
  version: string;
  sources: string[];
  /** Regular files, symlinks, directories and all entries (below the root) of the merged view. */
  files: number;
  symlinks: number;
  dirs: number;
  entries: number;
  fileBytes: number;
  shadowed: number;
  perLayer: number[];
  bigRel: string;
  bigBytes: number;
  midRel: string;
  midBytes: number;
  midLayer: number;
  deepLayers: number;
  deepDirs: number;
  deepFiles: number;
  buildSeconds: number;
}

export interface DataSet {
  root: string;
  manifest: Manifest;
  mainDir: string;
  /** Absolute paths, top first. */
  mainLayers: string[];
  deepDir: string;
  /** Absolute paths, top first. */
  deepLayers: string[];
  hitList: string;
  missList: string;
  /** The file whose mtime and ctime every layer entry must stay older than. */
  stamp: string;
}

function versionOf(p: DataParams): string {
  return `unionfs-ts-bench data v1 ${JSON.stringify(p)}`;
}

const BIG_REL = "bench/big-1g.bin";
const MID_REL = "bench/mid-256m.bin";

function fnv1a(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

const pad = (n: number, w: number): string => String(n).padStart(w, "0");

function describe(root: string, manifest: Manifest): DataSet {
  const mainDir = path.join(root, "main");
  const deepDir = path.join(root, "deep");
  return {
    root,
    manifest,
    mainDir,
    mainLayers: Array.from({ length: manifest.perLayer.length }, (_v, i) =>
      path.join(mainDir, `layer${manifest.perLayer.length - 1 - i}`),
    ),
    deepDir,
    deepLayers: Array.from({ length: manifest.deepLayers }, (_v, i) =>
      path.join(deepDir, `l${pad(manifest.deepLayers - 1 - i, 3)}`),
    ),
    hitList: path.join(deepDir, "hit.txt"),
    missList: path.join(deepDir, "miss.txt"),
    stamp: path.join(root, ".complete"),
  };
}

function readComplete(root: string, version: string): DataSet | undefined {
  try {
    if (fs.readFileSync(path.join(root, ".complete"), "utf8") !== version) return undefined;
    const manifest = JSON.parse(
      fs.readFileSync(path.join(root, "main", "manifest.json"), "utf8"),
    ) as Manifest;
    return describe(root, manifest);
  } catch {
    return undefined;
  }
}

function removeDir(dir: string): void {
  if (mountsUnder(dir).length > 0)
    throw new Error(`refusing to delete ${dir}: something is mounted below it`);
  if (!fs.existsSync(dir)) return;
  // rm(1) is several times faster than fs.rmSync on a 100,000-entry tree.
  const r = spawnSync("rm", ["-rf", "--one-file-system", dir], { stdio: "ignore" });
  if (r.status !== 0) fs.rmSync(dir, { recursive: true, force: true });
}

/** Returns the cached data set under `base`, building it first when missing, outdated or `force`. */
export async function prepareData(
  base: string,
  params: DataParams,
  force: boolean,
  log: (s: string) => void,
): Promise<DataSet> {
  const root = path.join(base, params.name);
  const version = versionOf(params);
  if (!force) {
    const have = readComplete(root, version);
    if (have) return have;
  }
  fs.mkdirSync(base, { recursive: true });
  // Leftovers of builders that died.
  for (const n of fs.readdirSync(base)) {
    const m = new RegExp(`^${params.name}\\.(tmp|old)-(\\d+)$`).exec(n);
    if (m && !alive(Number(m[2]))) removeDir(path.join(base, n));
  }
  const tmp = path.join(base, `${params.name}.tmp-${process.pid}`);
  removeDir(tmp);
  const t0 = Date.now();
  const say = log;
  log = (s: string): void => say(`${s} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  log(`[data] building the ${params.name} data set in ${root} (once; --force rebuilds it)`);
  try {
    const manifest = await build(tmp, params, version, log);
    manifest.buildSeconds = (Date.now() - t0) / 1000;
    fs.writeFileSync(path.join(tmp, "main", "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
    fs.writeFileSync(path.join(tmp, ".complete"), version);
    if (fs.existsSync(root)) {
      const old = path.join(base, `${params.name}.old-${process.pid}`);
      if (mountsUnder(root).length > 0)
        throw new Error(`cannot replace ${root}: something is mounted below it`);
      fs.renameSync(root, old);
      removeDir(old);
    }
    try {
      fs.renameSync(tmp, root);
    } catch (err) {
      // Another bench finished building the same data set first: use theirs.
      const theirs = readComplete(root, version);
      if (!theirs) throw err;
      removeDir(tmp);
      return theirs;
    }
    log(`[data] done in ${manifest.buildSeconds.toFixed(1)} s`);
    return describe(root, manifest);
  } catch (err) {
    removeDir(tmp);
    throw err;
  }
}

interface Entry {
  rel: string;
  src: string;
  link: boolean;
  size: number;
}

function walkSources(sources: string[]): { rel: string; src: string; link: boolean }[] {
  const out: { rel: string; src: string; link: boolean }[] = [];
  const walk = (abs: string): void => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(abs, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      // Names that are not valid UTF-8 (or hold a newline) would not survive the path strings used here.
      if (e.name.includes("\uFFFD") || e.name.includes("\n")) continue;
      const p = path.join(abs, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() || e.isSymbolicLink())
        out.push({ rel: p.slice(1), src: p, link: e.isSymbolicLink() });
    }
  };
  for (const s of sources) walk(s);
  return out;
}

/** Runs `fn` over `items` with at most `n` calls in flight. */
async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
}

/** Incompressible bytes, fast: AES-128-CTR over zeros with a random key. */
async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const cipher = createCipheriv("aes-128-ctr", randomBytes(16), randomBytes(16));
  const zeros = Buffer.alloc(4 * MiB);
  const fh = await fs.promises.open(file, "w", 0o644);
  try {
    for (let done = 0; done < bytes;) {
      const n = Math.min(zeros.length, bytes - done);
      await fh.write(cipher.update(zeros.subarray(0, n)));
      done += n;
    }
  } finally {
    await fh.close();
  }
}

async function build(
  tmp: string,
  p: DataParams,
  version: string,
  log: (s: string) => void,
): Promise<Manifest> {
  // ---- main stack: sample the sources in a stable pseudo-random order
  const all = walkSources(p.sources).map((e) => ({ ...e, h: fnv1a(e.rel, 0) }));
  all.sort((a, b) => a.h - b.h || (a.rel < b.rel ? -1 : 1));
  const chosen: Entry[] = [];
  let bytes = 0;
  for (const e of all) {
    if (chosen.length >= p.targetFiles || bytes >= p.maxBytes) break;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(e.src);
    } catch {
      continue;
    }
    if (!e.link && (!st.isFile() || st.size > p.maxFileBytes)) continue;
    chosen.push({ rel: e.rel, src: e.src, link: e.link, size: e.link ? 0 : st.size });
    bytes += e.link ? 0 : st.size;
  }
  chosen.sort((a, b) => (a.rel < b.rel ? -1 : 1));
  log(
    `[data] ${chosen.length} of ${all.length} entries of ${p.sources.join(",")}, ${(bytes / MiB).toFixed(0)} MiB`,
  );

  const layerDirs = Array.from({ length: p.layers }, (_v, i) => path.join(tmp, "main", `layer${i}`));
  const made = Array.from({ length: p.layers }, () => new Set<string>());
  const mergedDirs = new Set<string>();
  const perLayer = Array.from({ length: p.layers }, () => 0);
  const jobs: { e: Entry; layer: number }[] = [];
  let shadowed = 0;
  const ensureDir = (layer: number, relDir: string): void => {
    if (relDir === "." || made[layer]?.has(relDir)) return;
    fs.mkdirSync(path.join(layerDirs[layer] as string, relDir), { recursive: true, mode: 0o755 });
    for (let d = relDir; d !== "." && !made[layer]?.has(d); d = path.dirname(d)) {
      made[layer]?.add(d);
      mergedDirs.add(d);
    }
  };
  for (const l of layerDirs) fs.mkdirSync(l, { recursive: true });
  for (const e of chosen) {
    const layer = fnv1a(e.rel, 0) % p.layers;
    const put = (l: number): void => {
      ensureDir(l, path.dirname(e.rel));
      jobs.push({ e, layer: l });
      perLayer[l] = (perLayer[l] ?? 0) + 1;
    };
    put(layer);
    if (layer < p.layers - 1 && fnv1a(e.rel, 7) % 33 === 0) {
      put(layer + 1 + (fnv1a(e.rel, 13) % (p.layers - 1 - layer)));
      shadowed++;
    }
  }
  await pool(jobs, 8, async ({ e, layer }) => {
    const dst = path.join(layerDirs[layer] as string, e.rel);
    if (e.link) {
      await fs.promises.symlink(await fs.promises.readlink(e.src), dst);
      return;
    }
    await fs.promises.copyFile(e.src, dst);
    const mode = (await fs.promises.stat(dst)).mode;
    if (mode & 0o6000) await fs.promises.chmod(dst, mode & 0o1777);
  });

  // ---- big files; the bench dir exists in three layers so it merges too
  const mid = Math.min(1, p.layers - 1);
  log(`[data] random files: ${p.bigBytes / MiB} MiB (bottom layer), ${p.midBytes / MiB} MiB (layer ${mid})`);
  for (const l of new Set([0, mid, p.layers - 1])) fs.mkdirSync(path.join(layerDirs[l] as string, "bench"));
  await Promise.all([
    writeRandomFile(path.join(layerDirs[0] as string, BIG_REL), p.bigBytes),
    writeRandomFile(path.join(layerDirs[mid] as string, MID_REL), p.midBytes),
  ]);
  fs.writeFileSync(path.join(layerDirs[p.layers - 1] as string, "bench", "README.txt"), "benchmark files\n");
  mergedDirs.add("bench");

  // ---- deep stack
  log(`[data] deep stack: ${p.deepLayers} layers x ${p.deepDirs} dirs, ${p.deepFiles} files at the bottom`);
  const deep = path.join(tmp, "deep");
  for (let l = 0; l < p.deepLayers; l++) {
    for (let d = 0; d < p.deepDirs; d++) {
      const dir = path.join(deep, `l${pad(l, 3)}`, `d${pad(d, 3)}`);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `layer-${pad(l, 3)}.txt`), `layer ${l}\n`);
    }
  }
  const hit: string[] = [];
  const miss: string[] = [];
  for (let i = 0; i < p.deepFiles; i++) {
    const d = `d${pad(i % p.deepDirs, 3)}`;
    fs.writeFileSync(path.join(deep, "l000", d, `f${pad(i, 5)}`), `bottom ${i}\n`);
    hit.push(`${d}/f${pad(i, 5)}`);
    miss.push(`${d}/nowhere${pad(i, 5)}`);
  }
  fs.writeFileSync(path.join(deep, "hit.txt"), `${hit.join("\n")}\n`);
  fs.writeFileSync(path.join(deep, "miss.txt"), `${miss.join("\n")}\n`);

  const files = chosen.filter((e) => !e.link).length + 3;
  const symlinks = chosen.filter((e) => e.link).length;
  return {
    version,
    sources: p.sources,
    files,
    symlinks,
    dirs: mergedDirs.size,
    entries: files + symlinks + mergedDirs.size,
    fileBytes: bytes + p.bigBytes + p.midBytes + "benchmark files\n".length,
    shadowed,
    perLayer,
    bigRel: BIG_REL,
    bigBytes: p.bigBytes,
    midRel: MID_REL,
    midBytes: p.midBytes,
    midLayer: mid,
    deepLayers: p.deepLayers,
    deepDirs: p.deepDirs,
    deepFiles: p.deepFiles,
    buildSeconds: 0,
  };
}

/**
 * The main stack's layers packed as tar archives (`gzip`: .tar.gz, as image layers are shipped), top
 * first: built once next to the data set (`DATA/<name>/tar/`) and kept; their saved indexes are not.
 */
export function mainArchives(data: DataSet, gzip: boolean, log: (s: string) => void): string[] {
  const dir = path.join(data.root, "tar");
  fs.mkdirSync(dir, { recursive: true });
  return data.mainLayers.map((layer) => {
    const archive = path.join(dir, `${path.basename(layer)}.tar${gzip ? ".gz" : ""}`);
    if (fs.existsSync(archive)) return archive;
    const t0 = Date.now();
    const tmp = `${archive}.tmp-${process.pid}`;
    const args = ["--format=pax", "--numeric-owner", gzip ? "-czf" : "-cf", tmp, "-C", layer, "."];
    const r = spawnSync("tar", args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
    if (r.status !== 0) {
      fs.rmSync(tmp, { force: true });
      throw new Error(`tar ${args.join(" ")} failed: ${r.stderr.trim()}`);
    }
    fs.renameSync(tmp, archive);
    log(`[data] packed ${archive} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    return archive;
  });
}
