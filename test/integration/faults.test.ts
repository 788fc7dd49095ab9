/**
 * Faults during copy-up, end to end through real mounts. In every case the writer must get an errno
 * (never hang) within ANSWER_MS, the lower branch must stay byte for byte as it was, no partial copy may
 * show in the union or stay in the work dir, and the mount must keep serving afterwards:
 *
 * - ENOSPC: the upper branch on a tmpfs too small for the file, for a small file (copied inside the
 *   request) and a big one (≥ 32 MiB: copied by the background copy thread), compared with kernel
 *   overlayfs over the same kind of upper;
 * - a `mount -f` daemon whose stderr is closed, or a pipe nobody reads, meeting those same failures
 *   (the background `mount` form always has its stderr closed once started);
 * - EIO: the upper branch on an ext4 whose device ends early (a loop device shrunk under it), so the
 *   copy's data writes fail as on bad sectors, compared with kernel overlayfs;
 * - kill -9 of the daemon at random points of a big copy-up: the file is then old or new in the upper
 *   branch, never partial, and the next mount of the same branches empties the work dir.
 *
 * A writer that does not answer in time is stuck in the kernel (D state): its FUSE connection is
 * aborted to free it (helpers/faults.ts), and the test fails saying so. Teardown unmounts everything,
 * detaches loop devices and stops daemons, whether the test passed or not.
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  badDiskUnavailable,
  boundedChild,
  fuseDevAt,
  mountBadDisk,
  mountTmpfs,
  pyBounded,
} from "../helpers/faults";
import { forceUnmount, waitFor } from "../helpers/mounts";
import { diffSnapshots, snapshotTree, type SnapshotEntry } from "../helpers/snapshot";
import {
  Cleanup,
  cliBuilt,
  CLI_PATH,
  daemonPidsFor,
  EXIT_DEADLINE_MS,
  killAndWait,
  mountUnion,
  MOUNT_DEADLINE_MS,
  newTag,
  TAG_VAR,
  useCleanup,
} from "../helpers/unionfs";

const MiB = 1 << 20;
/** Below the 32 MiB threshold: copied inside the request that needs it. */
const SMALL_SIZE = 20 * MiB;
/** At or above it: copied by the background copy thread. */
const BIG_SIZE = 40 * MiB;
/** Upper tmpfs for ENOSPC: smaller than either file. */
const TMPFS_MIB = 8;
/** A writer must have its answer by then (kernel overlayfs takes milliseconds); later it is hung. */
const ANSWER_MS = 8_000;
/** The default work dir, in the writable branch. */
const WORK = ".wh..wh.unionfs";

interface Kind {
  name: string;
  file: string;
  size: number;
  how: string;
}

const KINDS: readonly Kind[] = [
  { name: "small", file: "small.bin", size: SMALL_SIZE, how: "copied inside the request" },
  { name: "big", file: "big.bin", size: BIG_SIZE, how: "copied by the background thread" },
];

/** The lower branch shared by the tests: two random files and a note, and what they must stay. */
interface Lower {
  dir: string;
  hash: Map<string, string>;
  /** sha256 of big.bin with the writer's "x\n" appended. */
  bigAppended: string;
  snapshot: SnapshotEntry[];
}

function sha256(...parts: Buffer[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

async function makeLower(t: Cleanup): Promise<Lower> {
  const dir = t.tempDir("faults-lower");
  const hash = new Map<string, string>();
  let bigAppended = "";
  for (const k of KINDS) {
    const data = randomBytes(k.size);
    fs.writeFileSync(path.join(dir, k.file), data);
    hash.set(k.file, sha256(data));
    if (k.file === "big.bin") bigAppended = sha256(data, Buffer.from("x\n"));
  }
  fs.writeFileSync(path.join(dir, "note.txt"), "a note\n");
  hash.set("note.txt", sha256(Buffer.from("a note\n")));
  return { dir, hash, bigAppended, snapshot: await snapshotTree(dir, { exact: true }) };
}

// ---- operations through a mount, each in a child process bounded by ANSWER_MS ------------------

const APPEND_PY = String.raw`
def append(p):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"x\n")
    finally:
        os.close(fd)
out["r"] = attempt(append, A[0])
`;

interface Answer {
  /** "ok" or the errno name. */
  code: string;
  ms: number;
}

/** Appends "x\n" to `mnt/rel` in a child; fails the test (after freeing the child) if it hangs. */
async function appendThrough(mnt: string, rel: string, what: string): Promise<Answer> {
  const r = await pyBounded<{ r: string }>(APPEND_PY, [path.join(mnt, rel)], { timeoutMs: ANSWER_MS, mnt });
  assert.ok(
    !r.hung,
    `${what}: the writer got no answer within ${ANSWER_MS} ms (stuck in the kernel; the FUSE connection was aborted to free it)`,
  );
  return { code: r.out.r, ms: r.ms };
}

/** Runs a shell snippet in a bounded child (as root) and returns its stdout; fails on a hang or error. */
async function shellIn(mnt: string, script: string, args: readonly string[], what: string): Promise<string> {
  const r = await boundedChild("sh", ["-c", script, "sh", ...args], { timeoutMs: ANSWER_MS, mnt });
  assert.ok(!r.hung, `${what}: no answer within ${ANSWER_MS} ms (the FUSE connection was aborted)`);
  assert.equal(r.status, 0, `${what}: exit ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

async function hashThrough(mnt: string, rel: string): Promise<string> {
  const out = await shellIn(mnt, 'sha256sum < "$1"', [path.join(mnt, rel)], `sha256sum ${rel}`);
  return out.split(" ")[0] ?? "";
}

// ---- what must hold after a fault ----------------------------------------------------------------

interface AfterFault {
  mnt: string;
  upper: string;
  lower: Lower;
  file: string;
  /** What "still serving" may ask of the upper filesystem: a new file with data, or only an empty one. */
  canWriteData: boolean;
}

function workDirEntries(upper: string): string[] {
  const work = path.join(upper, WORK);
  return fs.existsSync(work) ? fs.readdirSync(work) : [];
}

async function assertNothingPartial(a: AfterFault): Promise<void> {
  assert.equal(fs.existsSync(path.join(a.upper, a.file)), false, `a copy of ${a.file} was published`);
  assert.deepEqual(workDirEntries(a.upper), [], "the failed copy was left in the work dir");
  assert.equal(
    await hashThrough(a.mnt, a.file),
    a.lower.hash.get(a.file),
    `the union does not show ${a.file} as it is in the lower branch`,
  );
  const diff = diffSnapshots(a.lower.snapshot, await snapshotTree(a.lower.dir, { exact: true }));
  assert.deepEqual(diff, [], `the lower branch changed:\n${diff.join("\n")}`);
}

const SERVES_SH = String.raw`
set -e
ls -A "$1" | sort | tr '\n' ' '; echo
cat "$1/note.txt"
if [ "$2" = data ]; then printf 'after\n' > "$1/after.txt"; cat "$1/after.txt"; else : > "$1/after.txt"; fi
rm "$1/after.txt"
`;

async function assertStillServes(a: AfterFault): Promise<void> {
  const out = await shellIn(a.mnt, SERVES_SH, [a.mnt, a.canWriteData ? "data" : "empty"], "using the mount");
  assert.equal(out, `big.bin note.txt small.bin \na note\n${a.canWriteData ? "after\n" : ""}`);
}

/**
 * Appends to `file` on the union: the answer must be `code` (and the same again on a second try: a
 * failed copy leaves nothing that would change or wedge the next one), then everything else must hold.
 */
async function expectFailedCopyUp(a: AfterFault, code: string, what: string): Promise<Answer> {
  const first = await appendThrough(a.mnt, a.file, what);
  assert.equal(first.code, code, `${what}: the writer got ${first.code}`);
  await assertNothingPartial(a);
  const again = await appendThrough(a.mnt, a.file, `${what}, tried again`);
  assert.equal(again.code, code, `${what}, tried again: the writer got ${again.code}`);
  await assertNothingPartial(a);
  await assertStillServes(a);
  return first;
}

// ---- kernel overlayfs, the reference -------------------------------------------------------------

/** The errno kernel overlayfs gives for the same append with upper and work in `upperFs`. */
async function overlayAnswer(t: Cleanup, upperFs: string, lowerDir: string, file: string): Promise<string> {
  const up = path.join(upperFs, "ou");
  const work = path.join(upperFs, "ow");
  for (const d of [up, work]) if (!fs.existsSync(d)) fs.mkdirSync(d);
  const mnt = t.tempDir("faults-ovl");
  const ovl = t.overlay({ lower: [lowerDir], upper: up, work, mnt });
  const r = await pyBounded<{ r: string }>(APPEND_PY, [path.join(mnt, file)], { timeoutMs: ANSWER_MS });
  ovl.unmount();
  assert.ok(!r.hung, "kernel overlayfs did not answer");
  for (const d of [up, work]) fs.rmSync(d, { recursive: true, force: true });
  return r.out.r;
}

// ---- a `mount -f` daemon without a usable stderr --------------------------------------------------

type StderrMode = "closed" | "broken-pipe";

/**
 * `unionfs-ts mount -f [-o debug] BRANCHES MNT` with fd 2 closed (`2>&-`) or a pipe whose read end this
 * process closes at once (writes fail with EPIPE). Teardown unmounts, waits for the exit and SIGKILLs
 * a daemon that does not exit. Resolves once the mount is live, with the exit as a promise.
 */
async function foregroundWithoutStderr(
  t: Cleanup,
  branches: string,
  mnt: string,
  mode: StderrMode,
  debug: boolean,
): Promise<{ exited: Promise<number | null> }> {
  const tag = newTag();
  const argv = [CLI_PATH, "mount", "-f", ...(debug ? ["-o", "debug"] : []), branches, mnt];
  const env = { ...process.env, [TAG_VAR]: tag };
  const child =
    mode === "closed"
      ? spawn("sh", ["-c", 'exec "$@" 2>&-', "sh", process.execPath, ...argv], { stdio: "ignore", env })
      : spawn(process.execPath, argv, { stdio: ["ignore", "ignore", "pipe"], env });
  child.stderr?.destroy();
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve((exitCode = code))),
  );
  t.defer(`stop the mount -f daemon at ${mnt}`, async () => {
    forceUnmount(mnt);
    await killAndWait(daemonPidsFor(tag, mnt).filter((p) => p !== child.pid));
    if (exitCode === undefined) {
      await waitFor(() => exitCode !== undefined, EXIT_DEADLINE_MS, "mount -f to exit").catch(() =>
        child.kill("SIGKILL"),
      );
    }
  });
  await waitFor(
    () => exitCode !== undefined || fuseDevAt(mnt) !== undefined,
    MOUNT_DEADLINE_MS,
    `the mount at ${mnt}`,
  );
  assert.equal(exitCode, undefined, `mount -f exited ${exitCode} before mounting`);
  return { exited };
}

// ---- kill -9 during a background copy-up ---------------------------------------------------------

interface KillRound {
  /** Kill once the staged copy holds this share of the file (1: once the writer has its answer). */
  share: number;
  note: string;
}

/** Size of the staged copy in the work dir, or -1 while there is none. */
function stagedBytes(upper: string): number {
  const work = path.join(upper, WORK);
  let best = -1;
  for (const name of workDirEntries(upper)) {
    try {
      best = Math.max(best, fs.statSync(path.join(work, name)).size);
    } catch {
      // renamed into place meanwhile
    }
  }
  return best;
}

/**
 * Polls (yielding to the event loop each time) until the kill point of `share` is reached, then calls
 * `kill` at once (nothing slow in between: a copy takes only tens of milliseconds). Says where it was.
 */
async function killAtPoint(
  upper: string,
  share: number,
  writerDone: () => boolean,
  kill: () => void,
): Promise<string> {
  const deadline = Date.now() + ANSWER_MS;
  for (;;) {
    const staged = stagedBytes(upper);
    const point = writerDone()
      ? "after the writer's answer"
      : share >= 1
        ? undefined
        : staged >= share * BIG_SIZE
          ? `with ${(staged / MiB).toFixed(1)} MiB staged`
          : fs.existsSync(path.join(upper, "big.bin"))
            ? "after the copy was published"
            : Date.now() > deadline
              ? "at the deadline"
              : undefined;
    if (point !== undefined) {
      kill();
      return point;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** "absent", "old", "new" or a description of a partial file, for big.bin in `upper`. */
function upperState(upper: string, lower: Lower): string {
  const p = path.join(upper, "big.bin");
  if (!fs.existsSync(p)) return "absent";
  const h = sha256(fs.readFileSync(p));
  if (h === lower.hash.get("big.bin")) return "old";
  if (h === lower.bigAppended) return "new";
  return `PARTIAL (${fs.statSync(p).size} bytes)`;
}

async function killRound(t: Cleanup, lower: Lower, round: KillRound): Promise<string> {
  const upper = t.tempDir("faults-kill-upper");
  const mnt = t.tempDir("faults-kill-mnt");
  const m = await t.union(`${upper}:${lower.dir}`, mnt);
  const pids = m.daemonPids();
  assert.ok(pids.length > 0, "no daemon found");
  let done = false;
  const writer = pyBounded<{ r: string }>(APPEND_PY, [path.join(mnt, "big.bin")], {
    timeoutMs: ANSWER_MS,
    mnt,
  });
  void writer.finally(() => (done = true)).catch(() => undefined);
  const kill = (): void => pids.forEach((p) => process.kill(p, "SIGKILL"));
  const point = await killAtPoint(upper, round.share, () => done, kill);
  await killAndWait(pids);
  const w = await writer;
  assert.ok(!w.hung, `${round.note}: the writer hung after the daemon was killed ${point}`);
  assert.ok(["ok", "ENOTCONN", "ECONNABORTED"].includes(w.out.r), `${round.note}: the writer got ${w.out.r}`);
  if (round.share === 1) assert.equal(w.out.r, "ok");
  forceUnmount(mnt);
  const state = upperState(upper, lower);
  const left = workDirEntries(upper).length;
  assert.ok(["absent", "old", "new"].includes(state), `${round.note}, killed ${point}: big.bin is ${state}`);
  if (w.out.r === "ok")
    assert.equal(state, "new", `${round.note}: the write was answered, the file is ${state}`);

  const again = await mountUnion(`${upper}:${lower.dir}`, mnt);
  try {
    assert.deepEqual(workDirEntries(upper), [], "the next mount did not empty the work dir");
    const shown = await hashThrough(mnt, "big.bin");
    const want = state === "new" ? lower.bigAppended : lower.hash.get("big.bin");
    assert.equal(shown, want, `the union does not show big.bin as the upper branch holds it (${state})`);
  } finally {
    await again.unmount();
  }
  return `${round.note}: killed ${point}; writer ${w.out.r}; upper ${state}; work dir ${left} left, emptied by the next mount`;
}

// ---- the tests -----------------------------------------------------------------------------------

describe("faults during copy-up", function () {
  this.timeout(60_000);
  const shared = useCleanup("all");
  const t = useCleanup();
  let lower: Lower;

  before(async function () {
    if (process.getuid?.() !== 0 || !cliBuilt()) this.skip();
    lower = await makeLower(shared);
  });

  describe("ENOSPC: the upper branch on a tmpfs too small for the file", function () {
    for (const k of KINDS) {
      const guard =
        k.name === "big" ? " (regression: the copy thread's failure never reached the writer)" : "";
      it(`a ${k.name} file (${k.how}): the writer gets ENOSPC, as on kernel overlayfs${guard}`, async function () {
        const root = t.tempDir("faults-enospc");
        const upperFs = path.join(root, "fs");
        fs.mkdirSync(upperFs);
        mountTmpfs(t, upperFs, TMPFS_MIB);
        const reference = await overlayAnswer(t, upperFs, lower.dir, k.file);
        assert.equal(reference, "ENOSPC", "kernel overlayfs itself");

        const upper = path.join(upperFs, "u");
        fs.mkdirSync(upper);
        const mnt = path.join(root, "mp");
        fs.mkdirSync(mnt);
        await t.union(`${upper}:${lower.dir}`, mnt);
        await expectFailedCopyUp({ mnt, upper, lower, file: k.file, canWriteData: true }, reference, k.name);
      });
    }
  });

  describe("a mount -f daemon without a usable stderr meets failed copy-ups", function () {
    const cases: Array<{ name: string; mode: StderrMode; debug: boolean }> = [
      // Node reopens a closed fd 2 on /dev/null at start-up: this one guards that writes then go nowhere.
      { name: "stderr closed (2>&-)", mode: "closed", debug: false },
      { name: "stderr a pipe nobody reads (EPIPE)", mode: "broken-pipe", debug: false },
      {
        name: "stderr a pipe nobody reads and -o debug logging every request",
        mode: "broken-pipe",
        debug: true,
      },
    ];
    for (const c of cases) {
      it(`${c.name}: small and big copy-ups answer ENOSPC, it keeps serving, and exits 0 at unmount`, async function () {
        const root = t.tempDir("faults-stderr");
        const upperFs = path.join(root, "fs");
        const mnt = path.join(root, "mp");
        fs.mkdirSync(upperFs);
        fs.mkdirSync(mnt);
        mountTmpfs(t, upperFs, TMPFS_MIB);
        const upper = path.join(upperFs, "u");
        fs.mkdirSync(upper);
        const { exited } = await foregroundWithoutStderr(t, `${upper}:${lower.dir}`, mnt, c.mode, c.debug);
        for (const k of KINDS) {
          await expectFailedCopyUp({ mnt, upper, lower, file: k.file, canWriteData: true }, "ENOSPC", k.name);
        }
        forceUnmount(mnt);
        let code: number | null | undefined;
        void exited.then((c2) => (code = c2));
        await waitFor(() => code !== undefined, EXIT_DEADLINE_MS, "mount -f to exit after the unmount");
        assert.equal(code, 0, "mount -f exit status");
      });
    }
  });

  describe("EIO: the upper branch on a disk whose end is gone (a shrunk loop device)", function () {
    before(function () {
      const why = badDiskUnavailable();
      if (why !== undefined) {
        console.log(`      (skipped: ${why})`);
        this.skip();
      }
    });

    for (const k of KINDS) {
      it(`a ${k.name} file (${k.how}): the writer gets EIO, as on kernel overlayfs`, async function () {
        const root = t.tempDir("faults-eio");
        // 12 MiB of good blocks: neither file fits, so every copy reaches the missing part.
        const disk = mountBadDisk(t, root, { sizeMiB: 64, goodMiB: 12, dirs: ["u"] });
        const reference = await overlayAnswer(t, disk, lower.dir, k.file);
        assert.equal(reference, "EIO", "kernel overlayfs itself");

        const upper = path.join(disk, "u");
        const mnt = path.join(root, "mp");
        fs.mkdirSync(mnt);
        await t.union(`${upper}:${lower.dir}`, mnt);
        await expectFailedCopyUp({ mnt, upper, lower, file: k.file, canWriteData: false }, reference, k.name);
      });
    }
  });

  describe("kill -9 of the daemon during a big copy-up", function () {
    it("at random points: the writer is answered, big.bin is old or new (never partial), the next mount empties the work dir", async function () {
      const shares = [0, Math.random(), Math.random(), 1];
      const rounds: KillRound[] = shares.map((share) => ({
        share,
        note: share === 1 ? "after the answer" : `at ${Math.round(share * 100)}% staged`,
      }));
      const lines: string[] = [];
      for (const r of rounds) lines.push(await killRound(t, lower, r));
      console.log(lines.map((l) => `      ${l}`).join("\n"));
      const diff = diffSnapshots(lower.snapshot, await snapshotTree(lower.dir, { exact: true }));
      assert.deepEqual(diff, [], `the lower branch changed:\n${diff.join("\n")}`);
    });
  });
});
