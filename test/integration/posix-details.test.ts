/**
 * POSIX details a larger suite checks and single-scenario tests missed, each on a plain directory, on
 * kernel overlayfs and on unionfs-ts (both CLI forms), compared:
 *
 * - writes through a shared mapping update mtime and ctime, also while the file is open and its
 *   attributes were read after it was mapped (a passed-through file's attributes were cached for a day);
 * - an open directory read again from an old offset after it changed (seekdir): every entry carries
 *   the inode number stat gives (plain READDIR said 0xffffffff);
 * - rename over a file that is open: fstat of the open file works and reads the old data.
 *
 * Each scenario is one python3 child (bounded in time) printing one line of facts; every mount is taken
 * down in teardown.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { branchTree, type BranchTree as Tree } from "../helpers/forms";
import { PYTHON, runChild } from "../helpers/syscalls";
import { Cleanup, cliBuilt, useCleanup, cliMount } from "../helpers/unionfs";

const MMAP_PY = String.raw`
import os, mmap, sys, time
p = sys.argv[1]
fd = os.open(p, os.O_RDWR); m = mmap.mmap(fd, 8192); m[0:1] = b"a"; m.flush()
st0 = os.fstat(fd); time.sleep(0.02)
m[0:5] = b"hello"; m.flush()
st1 = os.stat(p)
time.sleep(0.02); m[5:9] = b"more"; m.close(); st2 = os.stat(p); os.close(fd)
print("msync: mtime", st1.st_mtime_ns != st0.st_mtime_ns, "ctime", st1.st_ctime_ns != st0.st_ctime_ns,
      "| munmap: mtime", st2.st_mtime_ns != st1.st_mtime_ns)
`;

const SEEKDIR_PY = String.raw`
import ctypes, ctypes.util, os, sys
d = sys.argv[1]
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]
libc.opendir.restype = ctypes.c_void_p
libc.readdir.restype = ctypes.POINTER(Dirent); libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long; libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]
def read(dp, limit):
    out = []
    while len(out) < limit:
        e = libc.readdir(dp)
        if not e: break
        out.append((e.contents.d_name.decode(), e.contents.d_ino))
    return out
dp = libc.opendir(d.encode())
first = read(dp, 300); pos = libc.telldir(dp); rest = read(dp, 10**6)
open(d + "/added", "w").close()
libc.seekdir(dp, pos); again = read(dp, 10**6)
libc.closedir(dp)
bad = [n for n, i in first + rest + again if n not in (".", "..") and os.lstat(d + "/" + n).st_ino != i]
names = [n for n, _ in first + rest if n not in (".", "..")]
print("listed", len(names), "distinct", len(set(names)), "| wrong d_ino", len(bad), bad[:3])
`;

const RENAME_OPEN_PY = String.raw`
import os, sys
mp = sys.argv[1]
out = []
for b in ("upper_b", "lower_b"):
    with open(mp + "/a_" + b, "w") as f: f.write("new")
    fd = os.open(mp + "/" + b, os.O_RDONLY)
    os.rename(mp + "/a_" + b, mp + "/" + b)
    try:
        st = os.fstat(fd); out.append("%s fstat ok data %r" % (b, os.pread(fd, 100, 0)))
    except OSError as e:
        out.append("%s fstat %s" % (b, e.strerror))
    os.close(fd)
    with open(mp + "/" + b) as f: out.append("now %r" % f.read())
print(" | ".join(out))
`;

/** Lower: a file to map, a big directory, a file to rename over; upper: the same in the upper. */
function makeTree(t: Cleanup): Tree {
  const tree = branchTree(t, "posix-details");
  const d = (n: string): string => path.join(tree.root, n);
  for (const n of ["lower/big", "upper/big"]) fs.mkdirSync(d(n));
  fs.writeFileSync(d("upper/mapped"), Buffer.alloc(8192));
  fs.writeFileSync(d("lower/mapped_lower"), Buffer.alloc(8192));
  for (let i = 0; i < 600; i++) fs.writeFileSync(d(`lower/big/l${i}`), "");
  for (let i = 0; i < 200; i++) fs.writeFileSync(d(`upper/big/u${i}`), "");
  fs.writeFileSync(d("upper/upper_b"), "old");
  fs.writeFileSync(d("lower/lower_b"), "old");
  return tree;
}

async function py(script: string, ...args: string[]): Promise<string> {
  const r = await runChild(PYTHON, ["-c", script, ...args], { timeoutMs: 20_000 });
  assert.equal(r.status, 0, `python3 ${r.timedOut ? "timed out" : "failed"}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Every scenario's line, on the view at `mnt`. */
async function observe(mnt: string): Promise<string[]> {
  return [
    `upper file: ${await py(MMAP_PY, path.join(mnt, "mapped"))}`,
    `lower file: ${await py(MMAP_PY, path.join(mnt, "mapped_lower"))}`,
    `seekdir: ${await py(SEEKDIR_PY, path.join(mnt, "big"))}`,
    `rename over open: ${await py(RENAME_OPEN_PY, mnt)}`,
  ];
}

describe("POSIX details under a union: mmap times, seekdir inode numbers, rename over an open file", function () {
  this.timeout(60_000);
  const t = useCleanup();
  let oracle: string[];

  before(async function () {
    if (process.getuid?.() !== 0 || !cliBuilt()) this.skip();
  });

  it("kernel overlayfs gives what a plain filesystem gives", async function () {
    const tr = makeTree(t);
    const ovl = t.overlay({ lower: [tr.lower], upper: tr.upper, work: tr.work, mnt: tr.mnt });
    oracle = await observe(tr.mnt);
    ovl.unmount();
    assert.deepEqual(oracle.slice(0, 2), [
      "upper file: msync: mtime True ctime True | munmap: mtime True",
      "lower file: msync: mtime True ctime True | munmap: mtime True",
    ]);
    assert.match(oracle[2] as string, /listed 800 distinct 800 \| wrong d_ino 0 \[\]/);
  });

  const forms: Array<[string, (tr: Tree) => string[]]> = [
    ["U:L MP", (tr) => [`${tr.upper}:${tr.lower}`, tr.mnt]],
    ["-o lowerdir=…", (tr) => ["-o", `lowerdir=${tr.lower},upperdir=${tr.upper},workdir=${tr.work}`, tr.mnt]],
  ];
  for (const [name, args] of forms) {
    for (const pt of ["auto", "off"]) {
      it(`regression: ${name} passthrough=${pt}: as on kernel overlayfs`, async function () {
        if (oracle === undefined) this.skip();
        const tr = makeTree(t);
        await cliMount(t, ["-o", `passthrough=${pt}`, ...args(tr)], tr.mnt);
        assert.deepEqual(await observe(tr.mnt), oracle);
      });
    }
  }
});
