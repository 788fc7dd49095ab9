/**
 * Access times follow the mount's atime mode, as on kernel overlayfs: relatime (the default: the first
 * read after a change counts, later ones within a day do not), strictatime (every read), noatime
 * (none), nodiratime (listings never count), ro (nothing changes). A lower object's access time never
 * changes, in the view or in the lower branch; exec and mmap are reads; a copy-up keeps the atime.
 *
 * One python3 child per mount runs the whole scenario on files and directories whose times were set two
 * hours back (a day back for one), printing one fact per step (`chg` or `same`); the union (both CLI
 * forms, passthrough on and off) must print what overlayfs prints for the same mode. Every mount is taken
 * down in teardown.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { OVERLAY_PINNED_OPTIONS } from "../helpers/mounts";
import { PYTHON, runChild } from "../helpers/syscalls";
import { Cleanup, cliBuilt, runCli, useCleanup } from "../helpers/unionfs";

/** argv: view [lower upper]. The pauses only separate timestamps (coarse clock), 30 ms each. */
const SCENARIO_PY = String.raw`
import os, stat, sys, time, subprocess
V = sys.argv[1]; L = sys.argv[2]
out = []
def at(p): return os.lstat(p).st_atime_ns
def nap(): time.sleep(0.03)
def fact(name, before, after): out.append("%s=%s" % (name, "chg" if before != after else "same"))
def read(p):
    with open(p, "rb") as f: f.read()
def twice(name, p, op):
    b = at(p); op(p); a1 = at(p); nap(); op(p); a2 = at(p)
    fact(name + ".1", b, a1); fact(name + ".2", a1, a2)
def walk(d): # lstat only: following a symlink would count as reading it
    out = [os.path.join(d, n) for n in os.listdir(d)]
    return out + [q for p in out if stat.S_ISDIR(os.lstat(p).st_mode) for q in walk(p)]
lower_paths = walk(L) # lists (touches) L's directories once, before their atimes are taken
def tree_atimes(d): return [os.lstat(p).st_atime_ns for p in lower_paths]
def attempt(name, fn):
    try: fn()
    except OSError as e: out.append("%s=%s" % (name, os.strerror(e.errno).replace(" ", "_")))
lower0 = tree_atimes(L)
nap()
twice("lower_read", V + "/lf", read)
twice("upper_read", V + "/uf", read)
def after_chmod():
    os.chmod(V + "/uf", 0o640); nap(); b = at(V + "/uf"); read(V + "/uf"); fact("read_after_chmod", b, at(V + "/uf"))
attempt("chmod", after_chmod)
def same_fd():
    fd = os.open(V + "/us", os.O_RDONLY); b = at(V + "/us"); os.pread(fd, 10, 0); a1 = at(V + "/us")
    nap(); os.pread(fd, 10, 0); a2 = at(V + "/us"); os.close(fd)
    fact("same_fd.1", b, a1); fact("same_fd.2", a1, a2)
same_fd()
b = at(V + "/uold"); read(V + "/uold"); fact("day_old_read", b, at(V + "/uold"))
def after_write():
    with open(V + "/uw", "r+b") as f: f.write(b"x")
    nap(); twice("read_after_write", V + "/uw", read)
    fd = os.open(V + "/uw2", os.O_RDWR); os.pwrite(fd, b"y", 0); nap(); b = at(V + "/uw2")
    os.pread(fd, 10, 0); fact("read_after_write_same_fd", b, at(V + "/uw2")); os.close(fd)
attempt("write", after_write)
run = lambda p: subprocess.run([p], check=True)
twice("exec_lower", V + "/lexe", run)
twice("exec_upper", V + "/uexe", run)
for d in ("udir", "ldir", "mdir"): twice("list_" + d, V + "/" + d, os.listdir)
twice("readlink_lower", V + "/lln", os.readlink)
twice("readlink_upper", V + "/uln", os.readlink)
def copy_up():
    b = at(V + "/lcopy"); os.chmod(V + "/lcopy", 0o600); fact("copy_up", b, at(V + "/lcopy"))
    nap(); read(V + "/lcopy"); fact("read_copy", b, at(V + "/lcopy"))
attempt("copy_up", copy_up)
out.append("lower_branch_untouched=%s" % (tree_atimes(L) == lower0))
print(" ".join(out))
`;

interface Tree {
  root: string;
  upper: string;
  lower: string;
  work: string;
  mnt: string;
}

const HOUR_MS = 3600 * 1000;

/**
 * Lower: lf, lcopy, lexe (/usr/bin/true), ldir/, mdir/, lln -> lf; upper: uf, us, uold, uw, uw2, uexe,
 * udir/, mdir/, uln -> uf.
 */
function makeTree(t: Cleanup): Tree {
  const root = t.tempDir("atime");
  const d = (n: string): string => path.join(root, n);
  for (const n of ["upper", "lower", "work", "mp", "lower/ldir", "lower/mdir", "upper/udir", "upper/mdir"])
    fs.mkdirSync(d(n));
  for (const n of ["lf", "lcopy"]) fs.writeFileSync(d(`lower/${n}`), "lower data\n");
  for (const n of ["uf", "us", "uold", "uw", "uw2"]) fs.writeFileSync(d(`upper/${n}`), "upper data\n");
  fs.copyFileSync("/usr/bin/true", d("lower/lexe"));
  fs.copyFileSync("/usr/bin/true", d("upper/uexe"));
  for (const n of ["lower/ldir/a", "lower/mdir/b", "upper/udir/c", "upper/mdir/d"])
    fs.writeFileSync(d(n), "");
  fs.symlinkSync("lf", d("lower/lln"));
  fs.symlinkSync("uf", d("upper/uln"));
  const old = new Date(Date.now() - 2 * HOUR_MS);
  for (const branch of ["lower", "upper"]) {
    for (const n of fs.readdirSync(d(branch), { recursive: true }) as string[]) {
      fs.lutimesSync(d(`${branch}/${n}`), old, old);
    }
  }
  fs.utimesSync(d("upper/uold"), new Date(Date.now() - 48 * HOUR_MS), new Date(Date.now() - 72 * HOUR_MS));
  return { root, upper: d("upper"), lower: d("lower"), work: d("work"), mnt: d("mp") };
}

async function observe(tr: Tree): Promise<string> {
  const r = await runChild(PYTHON, ["-c", SCENARIO_PY, tr.mnt, tr.lower], { timeoutMs: 30_000 });
  assert.equal(r.status, 0, `python3 ${r.timedOut ? "timed out" : "failed"}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The facts as a map, for the oracle's own checks. */
function facts(line: string): Map<string, string> {
  return new Map(line.split(" ").map((f) => f.split("=") as [string, string]));
}

async function cliMount(t: Cleanup, args: readonly string[], mnt: string): Promise<void> {
  const r = await runCli(["mount", ...args]);
  t.guardMountpoint(mnt, r.tag);
  assert.equal(r.status, 0, `unionfs-ts mount ${args.join(" ")}: ${r.stderr.trim()}`);
}

const MODES = ["relatime", "strictatime", "noatime", "nodiratime", "ro"] as const;
type Mode = (typeof MODES)[number];

/** What overlayfs must show, so that the oracle itself is checked against the documented modes. */
function checkOracle(mode: Mode, line: string): void {
  const f = facts(line);
  const lowerNever = ["lower_read.1", "exec_lower.1", "list_ldir.1", "list_ldir.2", "readlink_lower.1"];
  for (const k of lowerNever) assert.equal(f.get(k), "same", `${mode}: ${k} in ${line}`);
  assert.equal(f.get("lower_branch_untouched"), "True", line);
  const counts = mode === "relatime" || mode === "strictatime" || mode === "nodiratime";
  assert.equal(f.get("upper_read.1"), counts ? "chg" : "same", `${mode}: ${line}`);
  assert.equal(f.get("exec_upper.1"), counts ? "chg" : "same", `${mode}: ${line}`);
  assert.equal(f.get("upper_read.2"), mode === "strictatime" ? "chg" : "same", `${mode}: ${line}`);
  assert.equal(f.get("list_udir.1"), counts && mode !== "nodiratime" ? "chg" : "same", `${mode}: ${line}`);
  if (mode !== "ro") assert.equal(f.get("copy_up"), "same", `${mode}: a copy keeps the atime: ${line}`);
}

describe("access times follow the mount's atime mode, as on kernel overlayfs", function () {
  this.timeout(60_000);
  const t = useCleanup();
  const oracle = new Map<Mode, string>();

  before(async function () {
    if (process.getuid?.() !== 0 || !cliBuilt()) this.skip();
  });

  for (const mode of MODES) {
    it(`kernel overlayfs -o ${mode}: the reference`, async function () {
      const tr = makeTree(t);
      const extraOptions = [...OVERLAY_PINNED_OPTIONS, mode];
      const ovl = t.overlay({ lower: [tr.lower], upper: tr.upper, work: tr.work, mnt: tr.mnt, extraOptions });
      const line = await observe(tr);
      ovl.unmount();
      checkOracle(mode, line);
      oracle.set(mode, line);
    });
  }

  const forms: Array<[string, (tr: Tree, o: string) => string[]]> = [
    ["U:L MP", (tr, o) => ["-o", o, `${tr.upper}:${tr.lower}`, tr.mnt]],
    [
      "-o lowerdir=…",
      (tr, o) => ["-o", `lowerdir=${tr.lower},upperdir=${tr.upper},workdir=${tr.work},${o}`, tr.mnt],
    ],
  ];
  for (const mode of MODES) {
    for (const [name, args] of forms) {
      for (const pt of name === "U:L MP" ? ["auto", "off"] : ["auto"]) {
        it(`regression: ${name} -o ${mode},passthrough=${pt}: access times as on kernel overlayfs`, async function () {
          const want = oracle.get(mode);
          if (want === undefined) this.skip();
          const tr = makeTree(t);
          await cliMount(t, args(tr, `${mode},passthrough=${pt}`), tr.mnt);
          assert.equal(await observe(tr), want);
        });
      }
    }
  }
});
