/** File I/O: offsets, open flags, sparse files, fallocate, copy_file_range, mmap, sync, locks. */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { haveCommand, mustRun, py } from "../../helpers/syscalls";
import { symlink } from "../../helpers/tmp";
import { posixCase, type PosixCase } from "./case";
import { code, fsp, ls, lstat, nextTick, readText } from "./util";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Deterministic bytes: byte i is (i * 7 + seed) mod 251. */
function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) % 251;
  return b;
}

/** Python: a sparse file with data at [0, 4K) and [1M, 1M + 4K) and a trailing hole up to 2M. */
const MAKE_SPARSE = `
def make_sparse(p):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.pwrite(fd, b"a" * 4096, 0)
    os.pwrite(fd, b"b" * 4096, 1 << 20)
    os.ftruncate(fd, 2 << 20)
    os.close(fd)
`;

const SEEKS = `
def seeks(p):
    fd = os.open(p, os.O_RDONLY)
    r = {}
    for name, off, whence in (("data0", 0, os.SEEK_DATA), ("hole0", 0, os.SEEK_HOLE),
                              ("data4k", 4096, os.SEEK_DATA), ("hole1m", 1 << 20, os.SEEK_HOLE),
                              ("data_end", (1 << 20) + 4096, os.SEEK_DATA), ("hole_tail", (1 << 20) + 4096, os.SEEK_HOLE)):
        r[name] = attempt(os.lseek, fd, off, whence)
    os.close(fd)
    s = os.stat(p)
    r["size"] = s.st_size
    r["blocks"] = s.st_blocks
    return r
`;

/** What SEEKS gives on the file MAKE_SPARSE makes (4 KiB is the block size of the filesystems used). */
const SPARSE_LAYOUT = {
  data0: 0,
  hole0: 4096,
  data4k: MiB,
  hole1m: MiB + 4096,
  data_end: "ENXIO",
  hole_tail: MiB + 4096,
  size: 2 * MiB,
};

export const ioCases: PosixCase[] = [
  posixCase({
    area: "io",
    name: "pread and pwrite at offsets, past the end (leaving zeros), in a lower file",
    layout: { lower: { f: pattern(100 * KiB) } },
    async run(env) {
      const h = await fsp.open(env.at("f"), "r+");
      try {
        await h.write(Buffer.from("HELLO"), 0, 5, 70_000);
        await h.write(Buffer.from("END"), 0, 3, 200_000);
        const buf = Buffer.alloc(10);
        await h.read(buf, 0, 10, 69_998);
        const want = pattern(100 * KiB);
        assert.deepEqual(
          buf,
          Buffer.concat([want.subarray(69_998, 70_000), Buffer.from("HELLO"), want.subarray(70_005, 70_008)]),
        );
        const gap = Buffer.alloc(1000);
        await h.read(gap, 0, 1000, 150_000);
        assert.ok(gap.equals(Buffer.alloc(1000)), "the gap reads as zeros");
        const { bytesRead } = await h.read(Buffer.alloc(10), 0, 10, 200_003);
        assert.equal(bytesRead, 0, "a read at end of file returns nothing");
      } finally {
        await h.close();
      }
      assert.equal((await lstat(env.at("f"))).size, 200_003);
    },
  }),
  posixCase({
    area: "io",
    name: "O_APPEND: every write lands at the end, whatever the offset or the other descriptors did",
    layout: { lower: { f: "abc" } },
    async run(env) {
      const h1 = await fsp.open(env.at("f"), "a");
      const h2 = await fsp.open(env.at("f"), "a");
      const h3 = await fsp.open(env.at("f"), "r+");
      try {
        await h1.write("x");
        await h2.write("y");
        await h3.write("Z", 1);
        await h1.write(Buffer.from("w"), 0, 1, 0); // pwrite with O_APPEND appends on Linux
      } finally {
        await Promise.all([h1.close(), h2.close(), h3.close()]);
      }
      assert.equal(await readText(env.at("f")), "aZcxyw");
    },
  }),
  posixCase({
    area: "io",
    name: "O_TRUNC empties a lower file (and updates mtime); the same name opened read-only keeps data",
    layout: { lower: { f: "data", g: "keep" } },
    async run(env) {
      const before = await lstat(env.at("f"));
      await nextTick();
      await (await fsp.open(env.at("f"), fs.constants.O_WRONLY | fs.constants.O_TRUNC)).close();
      const after = await lstat(env.at("f"));
      assert.equal(after.size, 0);
      assert.ok(after.mtimeNs > before.mtimeNs, "O_TRUNC sets mtime");
      await (await fsp.open(env.at("g"), "r")).close();
      assert.equal(await readText(env.at("g")), "keep");
    },
  }),
  posixCase({
    area: "io",
    name: "O_CREAT|O_EXCL: EEXIST on a lower name and on a dangling symlink; fine on a deleted name",
    layout: { lower: { f: "lower", ds: symlink("nowhere") } },
    async run(env) {
      assert.equal(await code(fsp.open(env.at("f"), "wx")), "EEXIST");
      assert.equal(await code(fsp.open(env.at("ds"), "wx")), "EEXIST");
      assert.equal(await code(fsp.lstat(env.at("nowhere"))), "ENOENT", "O_EXCL does not follow the link");
      await fsp.unlink(env.at("f"));
      const h = await fsp.open(env.at("f"), "wx");
      await h.write("new");
      await h.close();
      assert.equal(await readText(env.at("f")), "new");
      assert.deepEqual(await ls(env.root), ["ds", "f"]);
    },
  }),
  posixCase({
    area: "io",
    name: "sparse files: SEEK_DATA and SEEK_HOLE find the data and holes of a lower file",
    layout: {
      prepareLower: async (dir) => {
        await py(`${MAKE_SPARSE}\nmake_sparse(A[0])`, [`${dir}/s`]);
      },
    },
    async run(env) {
      const r = await py(`${SEEKS}\nout["r"] = seeks(A[0])`, [env.at("s")]);
      const { blocks, ...seeks } = r.r as Record<string, number | string>;
      assert.deepEqual(seeks, SPARSE_LAYOUT);
      assert.ok((blocks as number) <= 64, `${blocks} blocks of 512 bytes`);
    },
  }),
  posixCase({
    area: "io",
    name: "copy-up of a sparse file keeps its holes (SEEK_HOLE, st_blocks, zeros)",
    layout: {
      prepareLower: async (dir) => {
        await py(`${MAKE_SPARSE}\nmake_sparse(A[0])`, [`${dir}/s`]);
      },
    },
    async run(env) {
      const r = await py(
        `${SEEKS}
fd = os.open(A[0], os.O_WRONLY); os.pwrite(fd, b"A", 0); os.close(fd)
out["r"] = seeks(A[0])
with open(A[0], "rb") as f:
    f.seek(5000); out["hole_bytes"] = f.read(10).hex()`,
        [env.at("s")],
      );
      assert.equal(r.hole_bytes, "00".repeat(10));
      const { blocks, ...seeks } = r.r as Record<string, number | string>;
      assert.deepEqual(seeks, SPARSE_LAYOUT);
      assert.ok((blocks as number) <= 64, `${blocks} blocks of 512 bytes: the holes are kept`);
    },
    differs: {
      overlayfs:
        "overlayfs copy-up skips only holes of at least its 1 MiB copy chunk, so smaller holes are filled",
    },
  }),
  posixCase({
    area: "io",
    name: "fallocate: allocate, keep size, punch a hole (fallocate(1)) in a lower file",
    requires: () => (haveCommand("fallocate") ? undefined : "fallocate(1) not installed"),
    layout: { lower: { f: Buffer.alloc(64 * KiB, "x") } },
    async run(env) {
      await mustRun("fallocate", ["-l", String(MiB), env.at("new")]);
      const n = await lstat(env.at("new"));
      assert.equal(n.size, MiB);
      assert.ok(n.blocks >= 2048, `allocated: ${n.blocks} blocks`);
      await mustRun("fallocate", ["-p", "-o", "4096", "-l", "8192", env.at("f")]);
      const data = await fsp.readFile(env.at("f"));
      assert.equal(data.length, 64 * KiB, "punching a hole keeps the size");
      assert.ok(data.subarray(4096, 12288).equals(Buffer.alloc(8192)), "the hole reads as zeros");
      assert.ok(data.subarray(0, 4096).equals(Buffer.alloc(4096, "x")));
      assert.ok(data.subarray(12288).equals(Buffer.alloc(64 * KiB - 12288, "x")));
      await mustRun("fallocate", ["-n", "-o", "0", "-l", String(256 * KiB), env.at("f")]);
      const f = await lstat(env.at("f"));
      assert.equal(f.size, 64 * KiB, "FALLOC_FL_KEEP_SIZE keeps the size");
      assert.ok(f.blocks >= 512, `keep-size allocation: ${f.blocks} blocks`);
    },
  }),
  posixCase({
    area: "io",
    name: "copy_file_range from a lower file into a new file and into the middle of a lower file",
    layout: { lower: { src: pattern(300 * KiB, 1), dst: pattern(10 * KiB, 2) } },
    async run(env) {
      const r = await py(
        `src = os.open(A[0], os.O_RDONLY)
new = os.open(A[1], os.O_WRONLY | os.O_CREAT, 0o644)
dst = os.open(A[2], os.O_WRONLY)
def copy_all(fin, fout, n, off_in, off_out):
    done = 0
    while done < n:
        k = os.copy_file_range(fin, fout, n - done, off_in + done, off_out + done)
        if k == 0: break
        done += k
    return done
out["new"] = attempt(copy_all, src, new, 200 * 1024, 1000, 0)
out["dst"] = attempt(copy_all, src, dst, 100, 0, 5000)
for fd in (src, new, dst): os.close(fd)`,
        [env.at("src"), env.at("new"), env.at("dst")],
      );
      assert.equal(r.new, 200 * KiB);
      assert.equal(r.dst, 100);
      const src = pattern(300 * KiB, 1);
      assert.ok((await fsp.readFile(env.at("new"))).equals(src.subarray(1000, 1000 + 200 * KiB)));
      const dst = pattern(10 * KiB, 2);
      src.copy(dst, 5000, 0, 100);
      assert.ok((await fsp.readFile(env.at("dst"))).equals(dst));
    },
  }),
  posixCase({
    area: "io",
    name: "shared writable mmap of a lower file: stores reach the file, writes reach the mapping",
    layout: { lower: { f: Buffer.alloc(8192, "a") } },
    async run(env) {
      const r = await py(
        `fd = os.open(A[0], os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[100:105] = b"hello"
m.flush()
other = os.open(A[0], os.O_RDONLY)
out["via_read"] = os.pread(other, 5, 100).decode()
os.pwrite(fd, b"WORLD", 4000)
out["via_map"] = m[4000:4005].decode()
m.close(); os.close(other); os.close(fd)`,
        [env.at("f")],
      );
      assert.equal(r.via_read, "hello");
      assert.equal(r.via_map, "WORLD");
      const data = await fsp.readFile(env.at("f"));
      assert.equal(data.subarray(100, 105).toString(), "hello");
      assert.equal(data.subarray(4000, 4005).toString(), "WORLD");
      assert.equal(data.length, 8192);
    },
  }),
  posixCase({
    area: "io",
    name: "fsync and fdatasync succeed on written files and on directories",
    layout: { lower: { f: "x", d: {} } },
    async run(env) {
      const r = await py(
        `fd = os.open(A[0], os.O_RDWR)
os.write(fd, b"synced")
out["fsync"] = attempt(os.fsync, fd)
out["fdatasync"] = attempt(os.fdatasync, fd)
os.close(fd)
dfd = os.open(A[1], os.O_RDONLY | os.O_DIRECTORY)
out["fsync_dir"] = attempt(os.fsync, dfd)
os.close(dfd)
rfd = os.open(A[2], os.O_RDONLY)
out["fsync_ro"] = attempt(os.fsync, rfd)
os.close(rfd)`,
        [env.at("f"), env.at("d"), env.at("d")],
      );
      assert.deepEqual(r, { fsync: "ok", fdatasync: "ok", fsync_dir: "ok", fsync_ro: "ok" });
      assert.equal(await readText(env.at("f")), "synced");
    },
  }),
  posixCase({
    area: "io",
    name: "flock: an exclusive lock excludes other open files until released (lower file)",
    layout: { lower: { f: "locked" } },
    async run(env) {
      const r = await py(
        `a = os.open(A[0], os.O_RDONLY)
b = os.open(A[0], os.O_RDONLY)
out["a_ex"] = attempt(fcntl.flock, a, fcntl.LOCK_EX | fcntl.LOCK_NB)
out["b_ex"] = attempt(fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)
out["b_sh"] = attempt(fcntl.flock, b, fcntl.LOCK_SH | fcntl.LOCK_NB)
fcntl.flock(a, fcntl.LOCK_UN)
out["b_ex_after"] = attempt(fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)
w = os.open(A[0], os.O_WRONLY)
out["w_sh"] = attempt(fcntl.flock, w, fcntl.LOCK_SH | fcntl.LOCK_NB)
os.close(b)
out["w_sh_after_close"] = attempt(fcntl.flock, w, fcntl.LOCK_SH | fcntl.LOCK_NB)
os.close(a); os.close(w)`,
        [env.at("f")],
      );
      assert.deepEqual(r, {
        a_ex: "ok",
        b_ex: "EAGAIN",
        b_sh: "EAGAIN",
        b_ex_after: "ok",
        w_sh: "EAGAIN",
        w_sh_after_close: "ok",
      });
    },
  }),
  posixCase({
    area: "io",
    name: "fcntl record locks: conflicts between processes, F_GETLK names the holder",
    layout: { lower: { f: "0123456789".repeat(30) } },
    async run(env) {
      const r = await py(
        `import struct
FL = "hhxxxxqqixxxx"
def setlk(fd, typ, start, length):
    r = attempt(fcntl.fcntl, fd, fcntl.F_SETLK, struct.pack(FL, typ, 0, start, length, 0))
    return "ok" if isinstance(r, bytes) else r
fd = os.open(A[0], os.O_RDWR)
out["parent"] = setlk(fd, fcntl.F_WRLCK, 0, 100)
rd, wr = os.pipe()
pid = os.fork()
if pid == 0:
    res = {}
    cfd = os.open(A[0], os.O_RDWR)
    res["overlap"] = setlk(cfd, fcntl.F_WRLCK, 50, 10)
    res["overlap_rd"] = setlk(cfd, fcntl.F_RDLCK, 0, 1)
    res["disjoint"] = setlk(cfd, fcntl.F_WRLCK, 100, 100)
    t, w, s, l, p = struct.unpack(FL, fcntl.fcntl(cfd, fcntl.F_GETLK, struct.pack(FL, fcntl.F_WRLCK, 0, 0, 10, 0)))
    res["getlk"] = [t == fcntl.F_WRLCK, s, l, p == os.getppid()]
    os.write(wr, json.dumps(res).encode())
    os._exit(0)
os.close(wr)
os.waitpid(pid, 0)
out.update(json.loads(os.read(rd, 4096)))
os.close(fd)`,
        [env.at("f")],
      );
      assert.equal(r.parent, "ok");
      const conflict = ["EAGAIN", "EACCES"];
      assert.ok(conflict.includes(r.overlap as string), `overlapping write lock: ${String(r.overlap)}`);
      assert.ok(conflict.includes(r.overlap_rd as string), `overlapping read lock: ${String(r.overlap_rd)}`);
      assert.equal(r.disjoint, "ok");
      assert.deepEqual(r.getlk, [true, 0, 100, true]);
    },
  }),
];
