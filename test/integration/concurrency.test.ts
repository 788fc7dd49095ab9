/**
 * Concurrent differential stress: many processes at once on one union, the kind of load a
 * single-process suite never makes.
 *
 * One seeded scenario runs on kernel overlayfs (the reference) and on unionfs-ts (several mount forms,
 * the shared server's one serving thread among them)
 * over identical initial branches (two lower layers with files, merged directories, a symlink and an
 * overlay whiteout; an upper layer with files). Worker processes (test/helpers/stress-worker.ts) run
 * side by side:
 * - SUBTREES workers, each doing seeded random operations (create, write, append, pwrite into lower
 *   files, truncate, unlink, mkdir, rmdir, renames, chmod, symlink, link, reads) in its own subtree;
 * - CHURNERS workers creating, deleting, linking and renaming churn names in shared directories and
 *   copying their stable files up (same bytes, same mode);
 * - READERS workers listing the root, the shared directories and the subtrees all the while.
 *
 * Interleavings differ between runs, so only what is deterministic is compared: each subtree's op log
 * (every outcome or errno) and final tree must equal the reference's; every listing, on both, lists
 * no name twice, every stable name and nothing unknown; stable files read back intact; lower layers
 * end unchanged byte for byte. A second block pins the listing bug this test was written for.
 *
 * Invariants: counts and times are bounded (ops per worker, listings per reader, a deadline per run);
 * worker processes are killed by PID in teardown if still running, before useCleanup unmounts.
 * Replay a failure with CONCURRENCY_SEED=<seed in the title>; CONCURRENCY_VERBOSE=1 prints each run's
 * counts and times; CONCURRENCY_SCALE=N runs N times as many ops (the deadline stays).
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { run, waitFor } from "../helpers/mounts";
import { prng, randBytes, randInt } from "../helpers/prng";
import { diffSnapshots, snapshotTree, xattrDump, type SnapshotEntry } from "../helpers/snapshot";
import { runChild } from "../helpers/syscalls";
import { symlink, writeTree, type TreeSpec } from "../helpers/tmp";
import { isAlive, killAndWait, useCleanup, type Cleanup } from "../helpers/unionfs";
import {
  checkListing,
  stableFile,
  type ListedDir,
  type WorkerConfig,
  type WorkerResult,
} from "../helpers/stress-worker";

const SEED = Number(process.env.CONCURRENCY_SEED ?? 20260417);
const VERBOSE = process.env.CONCURRENCY_VERBOSE === "1";
const WORKER_PATH = path.resolve(__dirname, "..", "helpers", "stress-worker.js");

const SUBTREES = 6;
const CHURNERS = 2;
const READERS = 3;
/** CONCURRENCY_SCALE=N multiplies the op and listing counts (for exploring; the suite runs with 1). */
const SCALE = Math.max(1, Number(process.env.CONCURRENCY_SCALE ?? 1));
const SUBTREE_OPS = 200 * SCALE;
const CHURN_OPS = 300 * SCALE;
const MAX_LISTINGS = 600 * SCALE;
/** No op starts later than this after the workers start; they get GRACE_MS more to exit. */
const WORK_MS = 25_000;
const GRACE_MS = 10_000;

// ---- initial branches -----------------------------------------------------------------------------

const range = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));
const pad3 = (i: number): string => String(i).padStart(3, "0");

/** s-merged: stable names spread over both lowers and the upper, some shadowed. */
const MERGED_L2 = range(100, (i) => `s${pad3(i)}`);
const MERGED_L1 = range(100, (i) => `s${pad3(i + 50)}`);
const MERGED_UP = [...range(20, (i) => `s${pad3(i + 100)}`), ...range(30, (i) => `s${pad3(i + 150)}`)];
/** s-big: a lower-only directory whose listing takes several READDIR pages. */
const BIG = range(400, (i) => `big-stable-name-${pad3(i)}`);
const SUBTREE_NAMES = range(SUBTREES, (i) => `w${i}`);
const ROOT_NAMES = [...SUBTREE_NAMES, "s-merged", "s-big", "top", "up-top"];

function stableSpec(names: readonly string[]): TreeSpec {
  return Object.fromEntries(names.map((n) => [n, stableFile(n).content]));
}

interface Branches {
  root: string;
  upper: string;
  /** Top first. */
  lowers: [string, string];
  work: string;
  mnt: string;
}

/** One subtree's initial files, a function of the seed and the subtree's number only. */
function subtreeSpecs(i: number): { l2: TreeSpec; l1: TreeSpec; up: TreeSpec } {
  const r = prng(SEED ^ (0x9e3779b9 * (i + 1)));
  const data = (): Buffer => randBytes(r, randInt(r, 64 * 1024));
  return {
    l2: { f4: data(), lo1: { f0: data(), f2: data() } },
    l1: {
      f0: data(),
      f1: data(),
      f2: data(),
      f3: data(),
      sl: symlink("f0"),
      lo0: { f0: data(), f1: data(), f2: data() },
      lo1: { f1: data() },
    },
    up: { f5: data(), lo0: { f3: data() } },
  };
}

function mkdirs(root: string, names: readonly string[]): string[] {
  return names.map((n) => {
    const p = path.join(root, n);
    fs.mkdirSync(p);
    fs.chmodSync(p, 0o755);
    return p;
  });
}

/** Stable files get their own modes (writeTree makes every file 0644). */
function applyStableModes(dir: string, names: readonly string[]): void {
  for (const n of names) fs.chmodSync(path.join(dir, n), stableFile(n).mode);
}

function buildBranches(root: string): Branches {
  const [upper, l1, l2, work, mnt] = mkdirs(root, ["upper", "lower1", "lower2", "work", "mnt"]) as [
    string,
    string,
    string,
    string,
    string,
  ];
  writeTree(l2, { top: "top\n", "s-merged": stableSpec(MERGED_L2) });
  writeTree(l1, { "s-merged": stableSpec(MERGED_L1), "s-big": stableSpec(BIG) });
  writeTree(upper, { "up-top": "up\n", "s-merged": stableSpec(MERGED_UP) });
  applyStableModes(path.join(l2, "s-merged"), MERGED_L2);
  applyStableModes(path.join(l1, "s-merged"), MERGED_L1);
  applyStableModes(path.join(l1, "s-big"), BIG);
  applyStableModes(path.join(upper, "s-merged"), MERGED_UP);
  for (const [i, w] of SUBTREE_NAMES.entries()) {
    const s = subtreeSpecs(i);
    writeTree(l2, { [w]: s.l2 });
    writeTree(l1, { [w]: s.l1 });
    writeTree(upper, { [w]: s.up });
    const wh = run("mknod", [path.join(l1, w, "lo1", "f2"), "c", "0", "0"]);
    if (wh.status !== 0) throw new Error(`mknod whiteout: ${wh.stderr.trim()}`);
  }
  return { root, upper, lowers: [l1, l2], work, mnt };
}

interface LowerState {
  snap: SnapshotEntry[];
  xattrs: string;
}

async function lowerStates(b: Branches): Promise<LowerState[]> {
  const out: LowerState[] = [];
  for (const l of b.lowers) out.push({ snap: await snapshotTree(l, { exact: true }), xattrs: xattrDump(l) });
  return out;
}

async function lowerChanges(b: Branches, before: readonly LowerState[]): Promise<string[]> {
  const problems: string[] = [];
  for (const [i, l] of b.lowers.entries()) {
    const was = before[i] as LowerState;
    const d = diffSnapshots(was.snap, await snapshotTree(l, { exact: true }));
    if (d.length > 0) problems.push(`lower ${i + 1} changed:\n${d.slice(0, 20).join("\n")}`);
    if (xattrDump(l) !== was.xattrs) problems.push(`xattrs of lower ${i + 1} changed`);
  }
  return problems;
}

// ---- worker processes -----------------------------------------------------------------------------

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Worker {
  label: string;
  pid: number;
  exit?: Exit;
}

/** Worker children of one run; `kill()` (registered with the cleanup) SIGKILLs those still alive. */
class WorkerSet {
  readonly workers: Worker[] = [];

  start(cfg: WorkerConfig, dir: string): Worker {
    const file = path.join(dir, `${cfg.label}.json`);
    fs.writeFileSync(file, JSON.stringify(cfg));
    const child = spawn(process.execPath, [WORKER_PATH, file], { stdio: ["ignore", "pipe", "pipe"] });
    if (child.pid === undefined) throw new Error(`could not start worker ${cfg.label}`);
    const w: Worker = { label: cfg.label, pid: child.pid };
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.once("close", (code, signal) => {
      w.exit = { code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
    });
    this.workers.push(w);
    return w;
  }

  async kill(): Promise<void> {
    await killAndWait(this.workers.filter((w) => w.exit === undefined && isAlive(w.pid)).map((w) => w.pid));
  }
}

/** Waits (polling, with a deadline) until every worker in `ws` has exited. */
async function waitExited(ws: readonly Worker[], deadline: number, what: string): Promise<void> {
  await waitFor(() => ws.every((w) => w.exit !== undefined), Math.max(deadline - Date.now(), 1), what);
}

function resultOf(w: Worker): WorkerResult {
  const e = w.exit;
  if (e === undefined) throw new Error(`worker ${w.label} still running`);
  if (e.code !== 0) throw new Error(`worker ${w.label} exited ${e.code ?? e.signal}: ${e.stderr.trim()}`);
  return JSON.parse(e.stdout) as WorkerResult;
}

function listedDirs(mnt: string): { shared: ListedDir[]; all: ListedDir[] } {
  const shared: ListedDir[] = [
    {
      path: path.join(mnt, "s-merged"),
      stable: [...new Set([...MERGED_L2, ...MERGED_L1, ...MERGED_UP])],
      readable: true,
      anyName: false,
    },
    { path: path.join(mnt, "s-big"), stable: BIG, readable: true, anyName: false },
  ];
  const root: ListedDir = { path: mnt, stable: ROOT_NAMES, readable: false, anyName: false };
  const subtrees = SUBTREE_NAMES.map((w) => ({
    path: path.join(mnt, w),
    stable: [],
    readable: false,
    anyName: true,
  }));
  return { shared, all: [root, ...shared, ...shared, ...subtrees] };
}

function configs(mnt: string, stopFile: string, deadline: number): WorkerConfig[] {
  const { shared, all } = listedDirs(mnt);
  const common = (label: string, k: number) => ({ label, seed: (SEED + 7919 * k) >>> 0, deadline });
  return [
    ...SUBTREE_NAMES.map((w, i) => ({
      ...common(w, i),
      role: "subtree" as const,
      root: path.join(mnt, w),
      ops: SUBTREE_OPS,
    })),
    ...range(CHURNERS, (i) => ({
      ...common(`churn${i}`, 100 + i),
      role: "churn" as const,
      dirs: shared,
      ops: CHURN_OPS,
    })),
    ...range(READERS, (i) => ({
      ...common(`reader${i}`, 200 + i),
      role: "reader" as const,
      dirs: all,
      maxListings: MAX_LISTINGS,
      stopFile,
    })),
  ];
}

// ---- one run --------------------------------------------------------------------------------------

interface StressRun {
  results: WorkerResult[];
  subtrees: Map<string, SnapshotEntry[]>;
  /** Broken invariants of this run alone (listings, reads, unfinished workers, lowers changed). */
  problems: string[];
  summary: string;
}

/** Starts every worker at once; stops the readers when the writers are done; returns their results. */
async function runWorkers(
  c: Cleanup,
  mnt: string,
  dir: string,
): Promise<{ results: WorkerResult[]; ms: number }> {
  const set = new WorkerSet();
  c.defer("kill stress workers", () => set.kill());
  const started = Date.now();
  const deadline = started + WORK_MS;
  const stopFile = path.join(dir, "stop");
  const ws = configs(mnt, stopFile, deadline).map((cfg) => ({ cfg, w: set.start(cfg, dir) }));
  const writers = ws.filter((x) => x.cfg.role !== "reader").map((x) => x.w);
  await waitExited(writers, deadline + GRACE_MS, "the writing workers to finish");
  fs.writeFileSync(stopFile, "");
  await waitExited(set.workers, deadline + 2 * GRACE_MS, "the reading workers to stop");
  return { results: set.workers.map(resultOf), ms: Date.now() - started };
}

/** Problems in the workers' own results: violations, and writers that did not do all their ops. */
function workerProblems(results: readonly WorkerResult[]): string[] {
  const problems: string[] = [];
  for (const r of results) {
    const want = r.role === "subtree" ? SUBTREE_OPS : r.role === "churn" ? CHURN_OPS : undefined;
    if (want !== undefined && r.opsDone < want)
      problems.push(`${r.label}: only ${r.opsDone} of ${want} ops before the deadline`);
    if (r.role === "reader" && r.badListings > 0)
      problems.push(`${r.label}: ${r.badListings} of ${r.listings} listings broken`);
    for (const v of r.violations) problems.push(`${r.label}: ${v}`);
    if (r.problems > r.violations.length)
      problems.push(`${r.label}: … ${r.problems - r.violations.length} more`);
  }
  return problems;
}

/** After the workers: one more listing of each shared directory, and every stable file read back. */
async function finalSharedProblems(mnt: string): Promise<string[]> {
  const problems: string[] = [];
  for (const d of listedDirs(mnt).shared) {
    const names = await fs.promises.readdir(d.path);
    for (const p of checkListing(d, names)) problems.push(`final listing of ${d.path}: ${p}`);
    for (const n of d.stable) {
      const want = stableFile(n);
      const p = path.join(d.path, n);
      const st = await fs.promises.lstat(p);
      if ((st.mode & 0o7777) !== want.mode || !(await fs.promises.readFile(p)).equals(want.content)) {
        problems.push(`stable file ${p} changed`);
      }
    }
  }
  return problems;
}

function summarize(who: string, results: readonly WorkerResult[], ms: number): string {
  const sum = (f: (r: WorkerResult) => number) => results.reduce((s, r) => s + f(r), 0);
  return (
    `${who}: ${results.length} workers, ${sum((r) => (r.role === "reader" ? 0 : r.opsDone))} ops, ` +
    `${sum((r) => r.listings)} listings (${sum((r) => r.badListings)} broken), ${ms} ms`
  );
}

type Mounter = (c: Cleanup, b: Branches) => Promise<() => Promise<unknown>>;

async function runStress(c: Cleanup, who: string, mount: Mounter): Promise<StressRun> {
  const b = buildBranches(c.tempDir("conc"));
  const before = await lowerStates(b);
  const unmount = await mount(c, b);
  const { results, ms } = await runWorkers(c, b.mnt, b.root);
  const problems = [...workerProblems(results), ...(await finalSharedProblems(b.mnt))];
  const subtrees = new Map<string, SnapshotEntry[]>();
  for (const w of SUBTREE_NAMES) subtrees.set(w, await snapshotTree(path.join(b.mnt, w)));
  await unmount();
  problems.push(...(await lowerChanges(b, before)));
  const summary = summarize(who, results, ms);
  if (VERBOSE) console.log(`      ${summary}`);
  return { results, subtrees, problems, summary };
}

/** Where `mine` differs from the reference in what is deterministic: op logs and subtree trees. */
function differences(ref: StressRun, mine: StressRun): string[] {
  const out: string[] = [];
  for (const w of SUBTREE_NAMES) {
    const a = ref.results.find((r) => r.label === w)?.log ?? [];
    const b = mine.results.find((r) => r.label === w)?.log ?? [];
    const diff = a.map((line, i) => [line, b[i]]).filter(([x, y]) => x !== y);
    for (const [x, y] of diff.slice(0, 5))
      out.push(`${w} op log: overlayfs "${x}", unionfs-ts "${y ?? "(none)"}"`);
    const d = diffSnapshots(ref.subtrees.get(w) ?? [], mine.subtrees.get(w) ?? []);
    if (d.length > 0) out.push(`${w} final tree (- overlayfs, + unionfs-ts):\n${d.slice(0, 20).join("\n")}`);
  }
  return out;
}

const overlayMounter: Mounter = async (c, b) => {
  const m = c.overlay({ lower: b.lowers, upper: b.upper, work: b.work, mnt: b.mnt });
  return async () => m.unmount();
};

interface Variant {
  name: string;
  mount: Mounter;
}

const unionMounter =
  (form: "branches" | "lowerdir", extra: readonly string[]): Mounter =>
  async (c, b) => {
    const options =
      form === "branches"
        ? [...extra]
        : [`lowerdir=${b.lowers.join(":")},upperdir=${b.upper},workdir=${b.work}`, ...extra];
    const src = form === "branches" ? [b.upper, ...b.lowers].join(":") : "stress";
    const m = await c.union(src, b.mnt, { options });
    return () => m.unmount();
  };

/** The shared server's form, on a socket directory of the test's own (never a server of the host). */
const sharedMounter: Mounter = async (c, b) => {
  const sockDir = path.join(c.tempDir("sock"), "s");
  fs.mkdirSync(sockDir, { mode: 0o700 });
  const saved = process.env.UNIONFS_TS_SOCKET_DIR;
  process.env.UNIONFS_TS_SOCKET_DIR = sockDir;
  try {
    const m = await c.union([b.upper, ...b.lowers].join(":"), b.mnt, { options: ["shared"] });
    return () => m.unmount();
  } finally {
    if (saved === undefined) delete process.env.UNIONFS_TS_SOCKET_DIR;
    else process.env.UNIONFS_TS_SOCKET_DIR = saved;
  }
};

const VARIANTS: Variant[] = [
  { name: "branch list U:L1:L2", mount: unionMounter("branches", []) },
  { name: "-o lowerdir=…,upperdir=…,workdir=…", mount: unionMounter("lowerdir", []) },
  {
    name: "branch list, -o passthrough=off,timeout=0",
    mount: unionMounter("branches", ["passthrough=off", "timeout=0"]),
  },
  { name: "branch list, -o shared (one thread serving the server's mounts)", mount: sharedMounter },
];

describe(`concurrency: ${SUBTREES + CHURNERS + READERS} processes at once, unionfs-ts against kernel overlayfs (CONCURRENCY_SEED=${SEED})`, function () {
  this.timeout(WORK_MS + 3 * GRACE_MS + 30_000);
  const c = useCleanup();
  let reference: StressRun | undefined;

  it("kernel overlayfs: every listing and read holds, lowers unchanged", async function () {
    reference = await runStress(c, "overlayfs", overlayMounter);
    assert.deepEqual(reference.problems, [], reference.summary);
  });

  for (const v of VARIANTS) {
    it(`unionfs-ts (${v.name}): listings hold, subtrees end as on overlayfs, lowers unchanged`, async function () {
      const ref = reference ?? (reference = await runStress(c, "overlayfs", overlayMounter));
      const mine = await runStress(c, `unionfs-ts ${v.name}`, v.mount);
      const problems = [...mine.problems, ...differences(ref, mine)];
      if (problems.length > 0) assert.fail(`${mine.summary}\n${problems.join("\n")}`);
    });
  }
});

// ---- the listing regression -------------------------------------------------------------------------

/** Makes DIRS directories of FILES files through the mount, each listed by two `ls -a` at once. */
const LISTING_SCRIPT = String.raw`
mp=$1 out=$2 dirs=$3 files=$4 prefix=$5
for t in $(seq 1 "$dirs"); do
  d="$mp/$prefix$t"
  mkdir "$d" || exit 1
  (cd "$d" && seq -f f%g "$files" | xargs touch) || exit 1
  ls -a "$d" > "$out/$prefix$t.1" & p1=$!
  ls -a "$d" > "$out/$prefix$t.2" & p2=$!
  wait $p1; s1=$?
  wait $p2; s2=$?
  [ $s1 = 0 ] && [ $s2 = 0 ] || exit 1
done
`;

const LISTING_CASES = [
  { dirs: 40, files: 30, prefix: "z" },
  { dirs: 3, files: 1000, prefix: "k" },
];

/** Runs the script for each case; returns the listings that are not exactly ".", ".." and the files. */
async function brokenListings(mnt: string, out: string): Promise<{ total: number; broken: string[] }> {
  const broken: string[] = [];
  let total = 0;
  for (const k of LISTING_CASES) {
    const r = await runChild(
      "bash",
      ["-c", LISTING_SCRIPT, "bash", mnt, out, String(k.dirs), String(k.files), k.prefix],
      { timeoutMs: 40_000 },
    );
    if (r.status !== 0)
      throw new Error(
        `listing script ${r.timedOut ? "timed out" : `exited ${r.status ?? r.signal}`}: ${r.stderr.trim()}`,
      );
    const want = [".", "..", ...range(k.files, (i) => `f${i + 1}`)];
    for (let t = 1; t <= k.dirs; t++) {
      for (const n of [1, 2]) {
        const names = fs
          .readFileSync(path.join(out, `${k.prefix}${t}.${n}`), "utf8")
          .split("\n")
          .filter((x) => x !== "");
        total++;
        const problems = checkListing({ path: "", stable: want, readable: false, anyName: false }, names);
        const extra = names.filter((x) => !want.includes(x));
        if (problems.length > 0 || extra.length > 0 || names.length !== want.length) {
          broken.push(
            `${k.prefix}${t} reader ${n}: ${names.length} names, want ${want.length}: ${problems.join("; ")}`,
          );
        }
      }
    }
  }
  return { total, broken };
}

function assertListingsOnce(res: { total: number; broken: string[] }): void {
  if (res.broken.length > 0) {
    assert.fail(
      `${res.broken.length} of ${res.total} listings wrong:\n${res.broken.slice(0, 10).join("\n")}`,
    );
  }
}

/** A child lists DIR with opendir (32-entry batches) and prints how many names it got, at most 10,000. */
const PAST_END_SCRIPT = `
const fs = require("fs");
const d = fs.opendirSync(process.argv[1], { bufferSize: 32 });
let n = 0;
for (let e = d.readSync(); e !== null && n < 10000; e = d.readSync()) n++;
d.closeSync();
process.stdout.write(String(n));
`;

/**
 * Fresh directories of 5 files each, made through the mount and listed at once by a child process:
 * libuv asks for more after a short batch, i.e. READDIR once more at the end of the listing, which must
 * give nothing (not the listing again). Returns how many names each listing got.
 */
async function pastEndCounts(mnt: string): Promise<number[]> {
  const counts: number[] = [];
  for (let t = 0; t < 5; t++) {
    const dir = path.join(mnt, `e${t}`);
    await fs.promises.mkdir(dir);
    for (let i = 0; i < 5; i++) await fs.promises.writeFile(path.join(dir, `f${i}`), "");
    const r = await runChild(process.execPath, ["-e", PAST_END_SCRIPT, dir], { timeoutMs: 20_000 });
    if (r.status !== 0) throw new Error(`lister exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
    counts.push(Number(r.stdout));
  }
  return counts;
}

describe("concurrent listings of one directory return each name once", function () {
  this.timeout(120_000);
  const c = useCleanup();

  const setup = (): { u: string; l: string; w: string; mp: string; out: string } => {
    const root = c.tempDir("listings");
    const [u, l, w, mp, out] = mkdirs(root, ["u", "l", "w", "mp", "out"]) as [
      string,
      string,
      string,
      string,
      string,
    ];
    return { u, l, w, mp, out };
  };

  it("on kernel overlayfs (the check itself)", async function () {
    const d = setup();
    const m = c.overlay({ lower: [d.l], upper: d.u, work: d.w, mnt: d.mp });
    const res = await brokenListings(d.mp, d.out);
    m.unmount();
    assertListingsOnce(res);
  });

  const mountForm = async (d: ReturnType<typeof setup>, form: "branches" | "lowerdir", extra: string[]) => {
    const options =
      form === "branches" ? extra : [`lowerdir=${d.l},upperdir=${d.u},workdir=${d.w}`, ...extra];
    return c.union(form === "branches" ? `${d.u}:${d.l}` : "listings", d.mp, { options });
  };

  it("on kernel overlayfs, a listing read on past its end gets no more names (the check itself)", async function () {
    const d = setup();
    const m = c.overlay({ lower: [d.l], upper: d.u, work: d.w, mnt: d.mp });
    const counts = await pastEndCounts(d.mp);
    m.unmount();
    assert.deepEqual(counts, [5, 5, 5, 5, 5]);
  });

  for (const form of ["branches", "lowerdir"] as const) {
    for (const extra of [[], ["timeout=0"]]) {
      const title = `${form === "branches" ? "U:L MP" : "-o lowerdir=L,upperdir=U,workdir=W MP"}${extra.length > 0 ? ` -o ${extra.join(",")}` : ""}`;
      it(`unionfs-ts ${title}: 40 dirs of 30 files and 3 of 1,000, two readers each`, async function () {
        const d = setup();
        const m = await mountForm(d, form, extra);
        const res = await brokenListings(d.mp, d.out);
        await m.unmount();
        assertListingsOnce(res);
      });

      it(`unionfs-ts ${title}: a listing read on past its end gets no more names`, async function () {
        const d = setup();
        const m = await mountForm(d, form, extra);
        const counts = await pastEndCounts(d.mp);
        await m.unmount();
        assert.deepEqual(
          counts,
          [5, 5, 5, 5, 5],
          "names each listing of 5 files got (10,000: it never ended)",
        );
      });
    }
  }
});
