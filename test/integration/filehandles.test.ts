/**
 * File handles (name_to_handle_at / open_by_handle_at, as NFS re-export, fanotify tools and
 * checkpoint/restore use them) through real mounts, with a plain directory as the reference and kernel
 * overlayfs (nfs_export=on, which needs index=on; redirect_dir=on so that a lower directory can be
 * renamed) as the oracle.
 *
 * Each system gets the same tree; a handle is taken of an object, the object is changed (copied up by
 * a write, renamed, linked, unlinked, its number reused, its directory renamed, a lower directory
 * renamed), the kernel is made to
 * forget its inodes (drop_caches: the FUSE kernel then asks the daemon for "." by node id, and for ".."
 * to reconnect a directory), and open_by_handle_at must give what a plain filesystem gives: the data or
 * listing and path of the object, or ESTALE. Then the same after an unmount and a mount of the same
 * branches. The union is mounted in both CLI forms (`U:L MP` and `-o lowerdir=L,upperdir=U,workdir=W MP`).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { waitFor } from "../helpers/mounts";
import { py } from "../helpers/syscalls";
import {
  type Cleanup,
  EXIT_DEADLINE_MS,
  cliBuilt,
  daemonPidsFor,
  runCli,
  useCleanup,
} from "../helpers/unionfs";

const OVERLAY_NFS_EXPORT = ["redirect_dir=on", "index=on", "nfs_export=on", "metacopy=off", "xino=off"];

/** Handles and their use, in python (CAP_DAC_READ_SEARCH: root). Paths in results show the mount as <M>. */
const PY_HANDLES = String.raw`
M = A[0].decode()
MAX = 128
class FH(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int), ("f_handle", ctypes.c_ubyte * MAX)]

def p(name):
    return os.path.join(M, name)

def handle(name):
    fh = FH(); fh.handle_bytes = MAX; mid = ctypes.c_int()
    if libc.name_to_handle_at(AT_FDCWD, os.fsencode(p(name)), ctypes.byref(fh), ctypes.byref(mid), 0) < 0:
        return errname(ctypes.get_errno())
    return "%d:%s" % (fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]).hex())

def by_handle(h, flags):
    if ":" not in h:
        return None, "no handle: " + h
    t, hexs = h.split(":"); b = bytes.fromhex(hexs)
    fh = FH(); fh.handle_bytes = len(b); fh.handle_type = int(t)
    ctypes.memmove(fh.f_handle, b, len(b))
    mfd = os.open(M, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = libc.open_by_handle_at(mfd, ctypes.byref(fh), flags)
        return (None, errname(ctypes.get_errno())) if fd < 0 else (fd, None)
    finally:
        os.close(mfd)

def read_h(h):
    fd, err = by_handle(h, os.O_RDONLY)
    if err:
        return err
    try:
        return os.pread(fd, 100, 0).decode()
    finally:
        os.close(fd)

def dir_h(h):
    fd, err = by_handle(h, os.O_RDONLY | os.O_DIRECTORY)
    if err:
        return err
    try:
        where = os.readlink("/proc/self/fd/%d" % fd)
        return {"ls": sorted(os.listdir(fd)), "path": where.replace(M, "<M>", 1)}
    finally:
        os.close(fd)

def put(name, data, mode="w"):
    with open(p(name), mode) as f:
        f.write(data)

def drop():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
`;

/** Changes objects after taking their handles, makes the kernel forget, opens by handle. */
const PY_WITHIN = String.raw`
h = {n: handle(n) for n in ["a", "x", "b", "c", "f", "g", "d", "ld", "ld/sub/file"]}
out["types"] = sorted(set(v.split(":")[0] for v in h.values()))
put("a", "upper-a")             # copy-up by an O_TRUNC open
put("x", "+", "a")              # copy-up of the data by an append
os.rename(p("b"), p("b2"))
os.link(p("c"), p("c2"))
os.link(p("f"), p("f2")); os.unlink(p("f"))
os.unlink(p("g"))
put("n1", "one"); h["n1"] = handle("n1"); os.unlink(p("n1")); put("n2", "two")
os.makedirs(p("x1/x2/x3")); put("x1/x2/x3/file", "deep")
h["x3"] = handle("x1/x2/x3"); h["deep"] = handle("x1/x2/x3/file")
os.rename(p("x1/x2"), p("moved"))
out["ld-rename"] = attempt(os.rename, p("ld"), p("ld2"))
drop()
for n in ["a", "x", "b", "c", "f", "g", "n1", "deep", "ld/sub/file"]:
    out[n] = read_h(h[n])
for n in ["d", "x3", "ld"]:
    out[n] = dir_h(h[n])
out["a-cached"] = read_h(h["a"])
`;

/** Before a remount: handles, then changes; the handles go to A[1]. */
const PY_SAVE = String.raw`
h = {n: handle(n) for n in ["a", "b", "d", "d/e", "ld", "ld/sub/file"]}
put("a", "upper-a")
os.rename(p("b"), p("b2"))
os.rename(p("ld"), p("ld2"))
os.makedirs(p("x1/x2")); put("x1/x2/file", "deep")
h["x2"] = handle("x1/x2"); h["deep"] = handle("x1/x2/file")
os.rename(p("x1"), p("y1"))
with open(A[1], "w") as f:
    json.dump(h, f)
`;

/** After the remount: every saved handle used. */
const PY_CHECK = String.raw`
with open(A[1]) as f:
    h = json.load(f)
drop()
for n in ["a", "b", "d/e", "deep", "ld/sub/file"]:
    out[n] = read_h(h[n])
for n in ["d", "x2", "ld"]:
    out[n] = dir_h(h[n])
`;

type Result = Record<string, unknown>;

interface Tree {
  root: string;
  lower: string;
  upper: string;
  work: string;
  mnt: string;
}

function makeTree(t: Cleanup): Tree {
  const root = t.tempDir("fh");
  const tree = {
    root,
    lower: path.join(root, "lower"),
    upper: path.join(root, "upper"),
    work: path.join(root, "work"),
    mnt: path.join(root, "mnt"),
  };
  for (const d of [tree.upper, tree.work, tree.mnt]) fs.mkdirSync(d);
  fillLower(tree.lower);
  return tree;
}

function fillLower(dir: string): void {
  fs.mkdirSync(path.join(dir, "d"), { recursive: true });
  fs.mkdirSync(path.join(dir, "ld", "sub"), { recursive: true });
  for (const n of ["a", "b", "c", "f", "g", "x"]) fs.writeFileSync(path.join(dir, n), `lower-${n}`);
  fs.writeFileSync(path.join(dir, "d", "e"), "lower-e");
  fs.writeFileSync(path.join(dir, "ld", "sub", "file"), "lower-ld");
}

async function within(mnt: string): Promise<Result> {
  return py(PY_HANDLES + PY_WITHIN, [mnt]);
}

async function save(mnt: string, file: string): Promise<Result> {
  return py(PY_HANDLES + PY_SAVE, [mnt, file]);
}

async function check(mnt: string, file: string): Promise<Result> {
  return py(PY_HANDLES + PY_CHECK, [mnt, file]);
}

interface Form {
  name: string;
  args(tree: Tree): string[];
}

const FORMS: readonly Form[] = [
  { name: "U:L MP", args: (tr) => [`${tr.upper}:${tr.lower}`, tr.mnt] },
  {
    name: "-o lowerdir=L,upperdir=U,workdir=W MP",
    args: (tr) => ["-o", `lowerdir=${tr.lower},upperdir=${tr.upper},workdir=${tr.work}`, tr.mnt],
  },
];

async function mountForm(t: Cleanup, form: Form, tree: Tree): Promise<string> {
  const r = await runCli(["mount", ...form.args(tree)]);
  t.guardMountpoint(tree.mnt, r.tag);
  assert.equal(r.status, 0, `unionfs-ts mount ${form.args(tree).join(" ")}: ${r.stderr.trim()}`);
  return r.tag;
}

async function unmountForm(tree: Tree, tag: string): Promise<void> {
  const r = await runCli(["umount", tree.mnt]);
  assert.equal(r.status, 0, `unionfs-ts umount: ${r.stderr.trim()}`);
  await waitFor(() => daemonPidsFor(tag, tree.mnt).length === 0, EXIT_DEADLINE_MS, "the daemon to exit");
}

describe("file handles (open_by_handle_at) against a plain directory and overlayfs nfs_export=on", function () {
  this.timeout(60_000);
  const t = useCleanup();
  let plainWithin: Result;
  let plainRemount: Result;

  before(async function () {
    if (process.getuid?.() !== 0 || !cliBuilt()) this.skip();
    const c = t; // the reference needs no mount
    const a = c.tempDir("fh-plain");
    fillLower(a);
    plainWithin = await within(a);
    const b = c.tempDir("fh-plain");
    fillLower(b);
    await save(b, path.join(b, "..", `${path.basename(b)}.json`));
    plainRemount = await check(b, path.join(b, "..", `${path.basename(b)}.json`));
    fs.rmSync(path.join(b, "..", `${path.basename(b)}.json`));
  });

  it("the plain directory: copies, renames and links keep handles; unlink and reuse make them stale", () => {
    assert.deepEqual(
      { ...plainWithin, types: undefined },
      {
        types: undefined,
        a: "upper-a",
        x: "lower-x+",
        b: "lower-b",
        c: "lower-c",
        f: "lower-f",
        g: "ESTALE",
        n1: "ESTALE",
        deep: "deep",
        "ld/sub/file": "lower-ld",
        d: { ls: ["e"], path: "<M>/d" },
        x3: { ls: ["file"], path: "<M>/moved/x3" },
        ld: { ls: ["sub"], path: "<M>/ld2" },
        "ld-rename": "ok",
        "a-cached": "upper-a",
      },
    );
    assert.deepEqual(plainRemount, {
      a: "upper-a",
      b: "lower-b",
      "d/e": "lower-e",
      deep: "deep",
      "ld/sub/file": "lower-ld",
      d: { ls: ["e"], path: "<M>/d" },
      x2: { ls: ["file"], path: "<M>/y1/x2" },
      ld: { ls: ["sub"], path: "<M>/ld2" },
    });
  });

  it("kernel overlayfs with nfs_export=on gives what the plain directory gives, across a remount too", async () => {
    const tree = makeTree(t);
    const o = { lower: [tree.lower], upper: tree.upper, work: tree.work, mnt: tree.mnt };
    t.overlay({ ...o, extraOptions: OVERLAY_NFS_EXPORT });
    const got = await within(tree.mnt);
    assert.deepEqual(got, { ...plainWithin, types: got.types });
    const again = makeTree(t);
    const o2 = { lower: [again.lower], upper: again.upper, work: again.work, mnt: again.mnt };
    const first = t.overlay({ ...o2, extraOptions: OVERLAY_NFS_EXPORT });
    const saved = path.join(again.root, "handles.json");
    await save(again.mnt, saved);
    first.unmount();
    t.overlay({ ...o2, extraOptions: OVERLAY_NFS_EXPORT });
    assert.deepEqual(await check(again.mnt, saved), plainRemount);
  });

  for (const form of FORMS) {
    it(`${form.name}: handles survive copy-up, rename, link and forgetting, as on a plain directory`, async () => {
      const tree = makeTree(t);
      await mountForm(t, form, tree);
      const got = await within(tree.mnt);
      assert.deepEqual(got, { ...plainWithin, types: got.types });
    });

    it(`regression: ${form.name}: handles survive an unmount and a mount of the same branches`, async () => {
      const tree = makeTree(t);
      const tag = await mountForm(t, form, tree);
      const saved = path.join(tree.root, "handles.json");
      await save(tree.mnt, saved);
      await unmountForm(tree, tag);
      await mountForm(t, form, tree);
      assert.deepEqual(await check(tree.mnt, saved), plainRemount);
    });
  }
});
