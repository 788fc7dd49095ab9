/**
 * One worker process of the concurrency stress test (test/integration/concurrency.test.ts): seeded
 * random file operations on a mount while sibling workers do theirs. Run as
 * `node dist/test/helpers/stress-worker.js CONFIG.json`; it prints one JSON `WorkerResult` on stdout
 * and exits 0. A broken invariant is data in the result, never an exit code or a throw.
 *
 * Roles:
 * - subtree: operations on its own directory, which no other worker touches. The op stream depends
 *   only on the seed (never on outcomes), so its log (each op and its outcome) and the final tree
 *   depend only on the seed and the initial branches: they must match between two filesystems.
 * - churn: creates, deletes, links and renames names of the churn pool (CHURN_NAME) in the shared
 *   directories, and copies stable files up by rewriting their bytes and mode unchanged. It never
 *   removes, renames or alters a stable name.
 * - reader: lists directories (readdirSync; opendir with small buffers and pauses; `ls -a`) until the
 *   stop file appears, checking every listing: no name twice, every stable name present, nothing but
 *   stable and churn names (unless `anyName`); and reads stable files back (bytes and mode).
 *
 * Invariants: every call is synchronous and no op starts after the deadline; workers write only in
 * their subtree (subtree) or the churn pool (churn); readers write nothing; the worker never exits
 * non-zero on its own (the parent treats that, or a missing result, as a failure).
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pick, prng, randBytes, randInt, type Rand } from "./prng";

/** Names the churn workers may create in shared directories: files c00…c23, directories cd0…cd3. */
export const CHURN_NAME = /^(c\d\d|cd\d)$/;
const CHURN_FILES = Array.from({ length: 24 }, (_, i) => `c${String(i).padStart(2, "0")}`);
const CHURN_DIRS = ["cd0", "cd1", "cd2", "cd3"];
/** Errors a churn op may meet because a sibling got there first; anything else is a violation. */
const CHURN_RACE_CODES = new Set(["ENOENT", "EEXIST", "ENOTEMPTY", "EISDIR", "ENOTDIR"]);
const MAX_VIOLATIONS = 20;

export interface ListedDir {
  /** Absolute path, through the mount. */
  path: string;
  /** Names present for the whole run: each must be in every listing exactly once. */
  stable: string[];
  /** The stable names are files made from `stableFile()`: read them back. */
  readable: boolean;
  /** Accept any other name (a subtree being changed); otherwise only CHURN_NAME names. */
  anyName: boolean;
}

interface Common {
  label: string;
  seed: number;
  /** Epoch ms after which no op starts. */
  deadline: number;
}

export interface SubtreeConfig extends Common {
  role: "subtree";
  root: string;
  ops: number;
}

export interface ChurnConfig extends Common {
  role: "churn";
  dirs: ListedDir[];
  ops: number;
}

export interface ReaderConfig extends Common {
  role: "reader";
  dirs: ListedDir[];
  maxListings: number;
  /** Outside the mount: readers stop once it exists. */
  stopFile: string;
}

export type WorkerConfig = SubtreeConfig | ChurnConfig | ReaderConfig;

export interface WorkerResult {
  label: string;
  role: WorkerConfig["role"];
  /** subtree: "<n> <op> -> <outcome>" per op. */
  log: string[];
  opsDone: number;
  listings: number;
  badListings: number;
  /** Problems found (listings, reads, unexpected errors); at most MAX_VIOLATIONS are kept. */
  problems: number;
  violations: string[];
  elapsedMs: number;
}

/** The bytes and mode of a stable file, a function of its name only. */
export function stableFile(name: string): { content: Buffer; mode: number } {
  let h = 7;
  for (const ch of name) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
  return { content: Buffer.from(`stable ${name}\n`.repeat(1 + (h % 300))), mode: h % 2 ? 0o640 : 0o644 };
}

// ---- results --------------------------------------------------------------------------------------

function newResult(cfg: WorkerConfig): WorkerResult {
  return {
    label: cfg.label,
    role: cfg.role,
    log: [],
    opsDone: 0,
    listings: 0,
    badListings: 0,
    problems: 0,
    violations: [],
    elapsedMs: 0,
  };
}

function violation(res: WorkerResult, what: string): void {
  res.problems++;
  if (res.violations.length < MAX_VIOLATIONS) res.violations.push(what);
}

function errCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("E") ? code : `THROW ${String(err)}`;
}

/** "ok", "ok <value>" or the errno name. */
function outcome(run: () => unknown): string {
  try {
    const v = run();
    return v === undefined ? "ok" : `ok ${String(v)}`;
  } catch (err) {
    return errCode(err);
  }
}

// ---- subtree worker -------------------------------------------------------------------------------

interface Op {
  desc: string;
  run: () => unknown;
}

type Gen = (r: Rand, at: (rel: string) => string) => Op;

const DIRS = [".", "lo0", "lo1", "n0", "n1", "n0/n2"];
const FILES = ["f0", "f1", "f2", "f3", "f4", "f5"];
/** Directories that never exist in a lower branch: the only ones renamed (overlayfs says EXDEV else). */
const NEW_DIRS = ["n0", "n1", "n0/n2", "n1/n3"];
const MODES = [0o600, 0o640, 0o644, 0o755];
const LINK_TARGETS = ["f0", "f3", "nowhere", "lo0/f1"];

const filePath = (r: Rand): string => path.posix.join(pick(r, DIRS), pick(r, FILES));

function pwrite(p: string, data: Buffer, offset: number): void {
  const fd = fs.openSync(p, "r+");
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

function sha(p: string): string {
  return createHash("sha256").update(fs.readFileSync(p)).digest("hex").slice(0, 16);
}

function statLine(p: string): string {
  const st = fs.lstatSync(p);
  const perm = (st.mode & 0o7777).toString(8);
  if (st.isFile()) return `file ${perm} size=${st.size} nlink=${st.nlink}`;
  if (st.isSymbolicLink()) return `symlink size=${st.size}`;
  return st.isDirectory() ? `dir ${perm}` : `other ${perm}`;
}

const SUBTREE_OPS: Array<[number, Gen]> = [
  [
    10,
    (r, at) => {
      const [f, d] = [filePath(r), randBytes(r, randInt(r, 3000))];
      return { desc: `create ${f} +${d.length}`, run: () => fs.writeFileSync(at(f), d, { flag: "wx" }) };
    },
  ],
  [
    8,
    (r, at) => {
      const [f, d] = [filePath(r), randBytes(r, randInt(r, 6000))];
      return { desc: `write ${f} +${d.length}`, run: () => fs.writeFileSync(at(f), d) };
    },
  ],
  [
    8,
    (r, at) => {
      const [f, d] = [filePath(r), randBytes(r, 1 + randInt(r, 3000))];
      return { desc: `append ${f} +${d.length}`, run: () => fs.appendFileSync(at(f), d) };
    },
  ],
  [
    10,
    (r, at) => {
      const [f, d, off] = [filePath(r), randBytes(r, 1 + randInt(r, 5000)), randInt(r, 70_000)];
      return { desc: `pwrite ${f} @${off} +${d.length}`, run: () => pwrite(at(f), d, off) };
    },
  ],
  [
    7,
    (r, at) => {
      const [f, n] = [filePath(r), randInt(r, 80_000)];
      return { desc: `truncate ${f} ${n}`, run: () => fs.truncateSync(at(f), n) };
    },
  ],
  [
    7,
    (r, at) => {
      const f = filePath(r);
      return { desc: `unlink ${f}`, run: () => fs.unlinkSync(at(f)) };
    },
  ],
  [
    5,
    (r, at) => {
      const d = r() < 0.2 ? pick(r, ["lo0", "lo1"]) : pick(r, NEW_DIRS);
      return { desc: `mkdir ${d}`, run: () => fs.mkdirSync(at(d)) };
    },
  ],
  [
    5,
    (r, at) => {
      const d = pick(r, [...NEW_DIRS, "lo0", "lo1"]);
      return { desc: `rmdir ${d}`, run: () => fs.rmdirSync(at(d)) };
    },
  ],
  [
    8,
    (r, at) => {
      const [a, b] = [filePath(r), filePath(r)];
      return { desc: `rename ${a} ${b}`, run: () => fs.renameSync(at(a), at(b)) };
    },
  ],
  [
    4,
    (r, at) => {
      const [a, b] = [pick(r, NEW_DIRS), pick(r, NEW_DIRS)];
      return { desc: `rename dir ${a} ${b}`, run: () => fs.renameSync(at(a), at(b)) };
    },
  ],
  [
    5,
    (r, at) => {
      const [f, m] = [filePath(r), pick(r, MODES)];
      return { desc: `chmod ${m.toString(8)} ${f}`, run: () => fs.chmodSync(at(f), m) };
    },
  ],
  [
    4,
    (r, at) => {
      const [f, t] = [filePath(r), pick(r, LINK_TARGETS)];
      return { desc: `symlink ${f} -> ${t}`, run: () => fs.symlinkSync(t, at(f)) };
    },
  ],
  [
    5,
    (r, at) => {
      const [a, b] = [filePath(r), filePath(r)];
      return { desc: `link ${a} ${b}`, run: () => fs.linkSync(at(a), at(b)) };
    },
  ],
  [
    6,
    (r, at) => {
      const f = filePath(r);
      return { desc: `read ${f}`, run: () => sha(at(f)) };
    },
  ],
  [
    4,
    (r, at) => {
      const d = pick(r, DIRS);
      return { desc: `readdir ${d}`, run: () => fs.readdirSync(at(d)).sort().join(",") };
    },
  ],
  [
    4,
    (r, at) => {
      const f = r() < 0.3 ? pick(r, DIRS) : filePath(r);
      return { desc: `lstat ${f}`, run: () => statLine(at(f)) };
    },
  ],
];

/** Picks one entry of a weighted table. */
function weighted<T>(r: Rand, table: ReadonlyArray<[number, T]>): T {
  const total = table.reduce((s, [w]) => s + w, 0);
  let x = r() * total;
  for (const [w, v] of table) {
    x -= w;
    if (x < 0) return v;
  }
  return (table[table.length - 1] as [number, T])[1];
}

function runSubtree(cfg: SubtreeConfig, res: WorkerResult): void {
  const r = prng(cfg.seed);
  const at = (rel: string): string => path.join(cfg.root, rel);
  for (let i = 0; i < cfg.ops && Date.now() < cfg.deadline; i++) {
    const op = weighted(r, SUBTREE_OPS)(r, at);
    res.log.push(`${i} ${op.desc} -> ${outcome(op.run)}`);
    res.opsDone++;
  }
}

// ---- churn worker ---------------------------------------------------------------------------------

type ChurnGen = (r: Rand, dirs: readonly ListedDir[]) => Op;

const churnFile = (r: Rand, dirs: readonly ListedDir[]): string =>
  path.join(pick(r, dirs).path, pick(r, CHURN_FILES));
const churnDir = (r: Rand, dirs: readonly ListedDir[]): string =>
  path.join(pick(r, dirs).path, pick(r, CHURN_DIRS));

/** A stable file of a readable directory, rewritten with its own bytes (copy-up, same content). */
function stablePath(r: Rand, dirs: readonly ListedDir[]): { p: string; name: string } | undefined {
  const d = pick(r, dirs);
  if (!d.readable || d.stable.length === 0) return undefined;
  const name = pick(r, d.stable);
  return { p: path.join(d.path, name), name };
}

const CHURN_OPS: Array<[number, ChurnGen]> = [
  [
    22,
    (r, ds) => {
      const [f, d] = [churnFile(r, ds), randBytes(r, randInt(r, 2000))];
      return { desc: `create ${f}`, run: () => fs.writeFileSync(f, d, { flag: "wx" }) };
    },
  ],
  [
    16,
    (r, ds) => {
      const f = churnFile(r, ds);
      return { desc: `unlink ${f}`, run: () => fs.unlinkSync(f) };
    },
  ],
  [
    18,
    (r, ds) => {
      const [a, b] = [churnFile(r, ds), churnFile(r, ds)];
      return { desc: `rename ${a} ${b}`, run: () => fs.renameSync(a, b) };
    },
  ],
  [
    5,
    (r, ds) => {
      const d = churnDir(r, ds);
      return { desc: `mkdir ${d}`, run: () => fs.mkdirSync(d) };
    },
  ],
  [
    5,
    (r, ds) => {
      const d = churnDir(r, ds);
      return { desc: `rmdir ${d}`, run: () => fs.rmdirSync(d) };
    },
  ],
  [
    5,
    (r, ds) => {
      const f = path.join(churnDir(r, ds), pick(r, CHURN_FILES));
      return { desc: `create ${f}`, run: () => fs.writeFileSync(f, "x", { flag: "wx" }) };
    },
  ],
  [
    5,
    (r, ds) => {
      const f = path.join(churnDir(r, ds), pick(r, CHURN_FILES));
      return { desc: `unlink ${f}`, run: () => fs.unlinkSync(f) };
    },
  ],
  [
    4,
    (r, ds) => {
      const [a, b] = [churnDir(r, ds), churnDir(r, ds)];
      return { desc: `rename dir ${a} ${b}`, run: () => fs.renameSync(a, b) };
    },
  ],
  [
    6,
    (r, ds) => {
      const [a, b] = [churnFile(r, ds), churnFile(r, ds)];
      return { desc: `link ${a} ${b}`, run: () => fs.linkSync(a, b) };
    },
  ],
  [
    4,
    (r, ds) => {
      const f = churnFile(r, ds);
      return { desc: `symlink ${f}`, run: () => fs.symlinkSync("c00", f) };
    },
  ],
  [
    7,
    (r, ds) => {
      const s = stablePath(r, ds);
      if (s === undefined) return { desc: "nothing", run: () => undefined };
      const { content } = stableFile(s.name);
      return { desc: `rewrite ${s.p}`, run: () => pwrite(s.p, content, 0) };
    },
  ],
  [
    3,
    (r, ds) => {
      const s = stablePath(r, ds);
      if (s === undefined) return { desc: "nothing", run: () => undefined };
      const { mode } = stableFile(s.name);
      return { desc: `chmod ${s.p}`, run: () => fs.chmodSync(s.p, mode) };
    },
  ],
];

function runChurn(cfg: ChurnConfig, res: WorkerResult): void {
  const r = prng(cfg.seed);
  for (let i = 0; i < cfg.ops && Date.now() < cfg.deadline; i++) {
    const op = weighted(r, CHURN_OPS)(r, cfg.dirs);
    const got = outcome(op.run);
    if (!got.startsWith("ok") && !CHURN_RACE_CODES.has(got)) violation(res, `${op.desc}: ${got}`);
    res.opsDone++;
  }
}

// ---- reader worker --------------------------------------------------------------------------------

function listReaddir(dir: string): string[] {
  return fs.readdirSync(dir);
}

/**
 * opendir with a small buffer, pausing (an lstat) now and then between entries: a slow reader. It
 * stops after `max` names, a listing that does not end being one of the problems it looks for (libuv
 * reads on after a short batch, so a filesystem that answers a READDIR past the end with the listing
 * again would loop forever).
 */
function listOpendir(r: Rand, dir: string, max: number, problems: string[]): string[] {
  const d = fs.opendirSync(dir, { bufferSize: 1 + randInt(r, 32) });
  const names: string[] = [];
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      names.push(e.name);
      if (r() < 0.05) outcome(() => fs.lstatSync(path.join(dir, e?.name ?? "")));
      if (names.length >= max) {
        problems.push(`listing did not end after ${max} names`);
        break;
      }
    }
  } finally {
    d.closeSync();
  }
  return names;
}

/** `ls -a -1`: "." and ".." must be there once each; they are taken out of the result. */
function listLs(dir: string, problems: string[]): string[] {
  const out = execFileSync("ls", ["-a", "-1", dir], { encoding: "utf8", timeout: 20_000 });
  const names = out.split("\n").filter((n) => n !== "");
  for (const dot of [".", ".."]) {
    const n = names.filter((x) => x === dot).length;
    if (n !== 1) problems.push(`"${dot}" ${n} times`);
  }
  return names.filter((n) => n !== "." && n !== "..");
}

const head = (xs: readonly string[]): string =>
  xs.slice(0, 8).join(" ") + (xs.length > 8 ? ` …(${xs.length})` : "");

/** Broken listing invariants, empty when the listing is fine. */
export function checkListing(d: ListedDir, names: readonly string[]): string[] {
  const count = new Map<string, number>();
  for (const n of names) count.set(n, (count.get(n) ?? 0) + 1);
  const problems: string[] = [];
  const twice = [...count].filter(([, k]) => k > 1).map(([n, k]) => `${n}x${k}`);
  if (twice.length > 0) problems.push(`listed more than once: ${head(twice)}`);
  const missing = d.stable.filter((n) => !count.has(n));
  if (missing.length > 0) problems.push(`stable names missing: ${head(missing)}`);
  if (!d.anyName) {
    const stable = new Set(d.stable);
    const odd = [...count.keys()].filter((n) => !stable.has(n) && !CHURN_NAME.test(n));
    if (odd.length > 0) problems.push(`unexpected names: ${head(odd)}`);
  }
  return problems;
}

/** Reads a few stable files back: bytes and mode as made, even while a churn worker copies them up. */
function checkStableFiles(r: Rand, d: ListedDir, res: WorkerResult): void {
  for (let k = 0; k < 3; k++) {
    const name = pick(r, d.stable);
    const want = stableFile(name);
    const p = path.join(d.path, name);
    try {
      const st = fs.lstatSync(p);
      if ((st.mode & 0o7777) !== want.mode) violation(res, `${p}: mode ${(st.mode & 0o7777).toString(8)}`);
      if (!fs.readFileSync(p).equals(want.content)) violation(res, `${p}: contents differ`);
    } catch (err) {
      violation(res, `${p}: ${errCode(err)}`);
    }
  }
}

function listOnce(r: Rand, d: ListedDir, res: WorkerResult): void {
  const x = r();
  const how = x < 0.4 ? "readdir" : x < 0.88 ? "opendir" : "ls";
  const problems: string[] = [];
  let names: string[];
  try {
    const max = 3 * (d.stable.length + 100);
    if (how === "readdir") names = listReaddir(d.path);
    else if (how === "opendir") names = listOpendir(r, d.path, max, problems);
    else names = listLs(d.path, problems);
  } catch (err) {
    names = [];
    problems.push(`listing failed: ${errCode(err)}`);
  }
  problems.push(...checkListing(d, names));
  res.listings++;
  if (problems.length > 0) {
    res.badListings++;
    violation(res, `${how} ${d.path} (${names.length} names): ${problems.join("; ")}`);
  }
  if (d.readable && r() < 0.3) checkStableFiles(r, d, res);
}

function runReader(cfg: ReaderConfig, res: WorkerResult): void {
  const r = prng(cfg.seed);
  while (res.listings < cfg.maxListings && Date.now() < cfg.deadline && !fs.existsSync(cfg.stopFile)) {
    listOnce(r, pick(r, cfg.dirs), res);
  }
}

// ---- main -----------------------------------------------------------------------------------------

function main(): void {
  const file = process.argv[2];
  if (file === undefined) throw new Error("usage: stress-worker CONFIG.json");
  const cfg = JSON.parse(fs.readFileSync(file, "utf8")) as WorkerConfig;
  process.umask(0o022);
  const res = newResult(cfg);
  const started = Date.now();
  if (cfg.role === "subtree") runSubtree(cfg, res);
  else if (cfg.role === "churn") runChurn(cfg, res);
  else runReader(cfg, res);
  res.elapsedMs = Date.now() - started;
  process.stdout.write(JSON.stringify(res));
}

if (require.main === module) main();
