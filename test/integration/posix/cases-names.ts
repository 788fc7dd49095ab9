/** File types (FIFO, socket, devices, symlinks) and names (long, deep, not UTF-8). */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { py } from "../../helpers/syscalls";
import { symlink } from "../../helpers/tmp";
import { posixCase, type PosixCase } from "./case";
import { code, fsp, ls, lstat, nameOf, readText } from "./util";

const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFSOCK = 0o140000;

/** Python: makes a chain of `levels` directories named `comp` below the cwd, ending in a file. */
const MAKE_DEEP = `
def make_deep(top, levels, comp, content):
    os.chdir(top)
    for _ in range(levels):
        os.mkdir(comp)
        os.chdir(comp)
    with open(b"file", "wb") as f: f.write(content)
`;

/** 250-byte components: 17 of them make a 4267-byte relative path, past PATH_MAX (4096). */
const COMP = nameOf(250, "c");
const DEEP_LEVELS = 17;
/** 15 levels: a 3765-byte relative path, under PATH_MAX by itself (plus "/file"). */
const NEAR_COMP = nameOf(250, "m");
const NEAR_LEVELS = 15;

export const nameCases: PosixCase[] = [
  posixCase({
    area: "types",
    name: "FIFOs: mkfifo through the mount and from the lower layer carry data",
    layout: {
      lower: {},
      prepareLower: async (dir) => {
        await py(`os.mkfifo(A[0], 0o644)`, [`${dir}/lowerfifo`]);
      },
    },
    async run(env) {
      const r = await py(
        `os.mkfifo(A[0], 0o600)
res = {}
for p in (A[0], A[1]):
    rfd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    wfd = os.open(p, os.O_WRONLY)
    os.write(wfd, b"through " + os.path.basename(p))
    res[os.path.basename(p).decode()] = [os.read(rfd, 100).decode(), os.lstat(p).st_mode]
    os.close(wfd); os.close(rfd)
out["res"] = res`,
        [env.at("newfifo"), env.at("lowerfifo")],
      );
      const res = r.res as Record<string, [string, number]>;
      assert.equal(res.newfifo?.[0], "through newfifo");
      assert.equal(res.lowerfifo?.[0], "through lowerfifo");
      assert.equal((res.newfifo?.[1] ?? 0) & S_IFMT, S_IFIFO);
      assert.equal((res.lowerfifo?.[1] ?? 0) & S_IFMT, S_IFIFO);
      assert.deepEqual(await ls(env.root), ["lowerfifo", "newfifo"]);
    },
  }),
  posixCase({
    area: "types",
    name: "unix sockets: bind creates a socket node that clients can connect to",
    layout: {
      lower: {},
      prepareLower: async (dir) => {
        await py(`s = socket.socket(socket.AF_UNIX); s.bind(A[0]); s.close()`, [`${dir}/lowersock`]);
      },
    },
    async run(env) {
      // Socket paths are limited to 108 bytes: work from inside the root.
      const r = await py(
        `os.chdir(A[0])
srv = socket.socket(socket.AF_UNIX); srv.bind(b"sock"); srv.listen(1)
cli = socket.socket(socket.AF_UNIX); cli.connect(b"sock")
conn, _ = srv.accept(); cli.sendall(b"ping"); out["got"] = conn.recv(10).decode()
out["mode"] = os.lstat(b"sock").st_mode
out["lower_mode"] = os.lstat(b"lowersock").st_mode
c2 = socket.socket(socket.AF_UNIX)
out["connect_lower"] = attempt(c2.connect, b"lowersock")
for s in (conn, cli, srv, c2): s.close()`,
        [env.root],
      );
      assert.equal(r.got, "ping");
      assert.equal((r.mode as number) & S_IFMT, S_IFSOCK);
      assert.equal((r.lower_mode as number) & S_IFMT, S_IFSOCK);
      assert.equal(r.connect_lower, "ECONNREFUSED", "nobody listens on the lower socket");
    },
  }),
  posixCase({
    area: "types",
    name: "device nodes: mknod makes char and block devices (also a 0:0 char device), lower ones too",
    layout: {
      lower: {},
      prepareLower: async (dir) => {
        await py(`os.mknod(A[0], stat.S_IFCHR | 0o644, os.makedev(1, 3))`, [`${dir}/lowernull`]);
      },
    },
    async run(env) {
      const r = await py(
        `os.mknod(A[0] + b"/null", stat.S_IFCHR | 0o644, os.makedev(1, 3))
os.mknod(A[0] + b"/loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))
out["zero0"] = attempt(os.mknod, A[0] + b"/c00", stat.S_IFCHR | 0o600, os.makedev(0, 0))
res = {}
for n in (b"null", b"loop", b"lowernull", b"c00"):
    s = attempt(os.lstat, A[0] + b"/" + n)
    res[n.decode()] = s if isinstance(s, str) else [s.st_mode, os.major(s.st_rdev), os.minor(s.st_rdev)]
out["res"] = res
with open(A[0] + b"/null", "r+b") as f:
    f.write(b"gone"); out["read_null"] = f.read().decode()`,
        [env.root],
      );
      const res = r.res as Record<string, [number, number, number] | string>;
      assert.deepEqual(res.null, [S_IFCHR | 0o644, 1, 3]);
      assert.deepEqual(res.loop, [S_IFBLK | 0o600, 7, 0]);
      assert.deepEqual(res.lowernull, [S_IFCHR | 0o644, 1, 3]);
      assert.equal(r.read_null, "", "the node is the device: writes vanish, reads hit EOF");
      assert.equal(r.zero0, "ok");
      assert.deepEqual(res.c00, [S_IFCHR | 0o600, 0, 0], "a 0:0 char device is an ordinary device node");
    },
    differs: {
      overlayfs: "overlayfs refuses to create a 0:0 character device (its whiteout format): EPERM",
      "unionfs-ts":
        "like overlayfs: a 0:0 character device is the overlay whiteout format, read in every layer, so creating one is refused (EPERM)",
    },
  }),
  posixCase({
    area: "types",
    name: "symlink chains that end in the lower layer resolve; loops give ELOOP; writes follow them",
    layout: {
      lower: {
        t: "target",
        d: { x: "X", rel: symlink("../t") },
        l1: symlink("t"),
        l2: symlink("l1"),
        dl: symlink("d"),
        loop1: symlink("loop2"),
        loop2: symlink("loop1"),
      },
      upper: { l0: symlink("l2") },
    },
    async run(env) {
      assert.equal(await readText(env.at("l0")), "target");
      assert.equal(await fsp.readlink(env.at("l0")), "l2");
      assert.equal(await fsp.readlink(env.at("l2")), "l1");
      assert.equal(await readText(env.at("dl/x")), "X");
      assert.equal(await readText(env.at("dl/rel")), "target");
      assert.equal(await code(fsp.readFile(env.at("loop1"))), "ELOOP");
      const st = await fsp.stat(env.at("l0"));
      assert.ok(st.isFile() && st.size === 6);
      await fsp.appendFile(env.at("l0"), "+");
      assert.equal(await readText(env.at("t")), "target+");
      assert.ok((await fsp.lstat(env.at("l1"))).isSymbolicLink(), "writing through a link leaves the link");
      await fsp.symlink("dl/x", env.at("new"));
      assert.equal(await readText(env.at("new")), "X");
      assert.equal((await lstat(env.at("new"))).size, 4, "a symlink's size is its target's length");
    },
  }),
  posixCase({
    area: "names",
    name: "255-byte names work (create, read, rename, delete a lower one); 256 bytes is ENAMETOOLONG",
    layout: { lower: { [nameOf(255, "L")]: "lower long", [nameOf(255, "D")]: { f: "f" } } },
    async run(env) {
      const lowerName = nameOf(255, "L");
      const lowerDir = nameOf(255, "D");
      await fsp.writeFile(env.at(nameOf(255, "N")), "new long");
      assert.equal(await readText(env.at(nameOf(255, "N"))), "new long");
      assert.equal(await code(fsp.writeFile(env.at(nameOf(256, "X")), "")), "ENAMETOOLONG");
      assert.equal(await readText(env.at(lowerName)), "lower long");
      await fsp.appendFile(env.at(lowerName), "+");
      await fsp.rename(env.at(lowerName), env.at(nameOf(255, "R")));
      assert.equal(await readText(env.at(nameOf(255, "R"))), "lower long+");
      await fsp.unlink(env.at(`${lowerDir}/f`));
      await fsp.rmdir(env.at(lowerDir));
      assert.deepEqual(await ls(env.root), [nameOf(255, "N"), nameOf(255, "R")]);
      await fsp.unlink(env.at(nameOf(255, "R")));
      assert.deepEqual(await ls(env.root), [nameOf(255, "N")]);
    },
  }),
  posixCase({
    area: "names",
    name: "paths near PATH_MAX work as one relative path; deeper trees are reached by chdir",
    timeoutMs: 60_000,
    layout: {
      prepareLower: async (dir) => {
        await py(`${MAKE_DEEP}\nmake_deep(A[0], ${DEEP_LEVELS}, A[1], b"deep lower")`, [dir, COMP]);
      },
    },
    async run(env) {
      const r = await py(
        `${MAKE_DEEP}
near = b"/".join([A[2]] * ${NEAR_LEVELS})
os.chdir(A[0])
def near_ops():
    os.makedirs(near)
    with open(near + b"/file", "wb") as f: f.write(b"near")
    with open(near + b"/file", "rb") as f: return f.read().decode()
out["near"] = attempt(near_ops)
out["near_len"] = len(near + b"/file")
os.mkdir(A[0] + b"/n")
out["new_deep"] = attempt(make_deep, A[0] + b"/n", ${DEEP_LEVELS}, A[1], b"deep new")
def lower_deep():
    os.chdir(A[0])
    for _ in range(${DEEP_LEVELS}): os.chdir(A[1])
    before = open(b"file", "rb").read().decode()
    with open(b"file", "ab") as f: f.write(b"+")
    return [before, open(b"file", "rb").read().decode()]
out["lower_deep"] = attempt(lower_deep)`,
        [env.root, COMP, NEAR_COMP],
      );
      assert.ok((r.near_len as number) < 4096 && (r.near_len as number) > 3700);
      assert.equal(r.near, "near", "a relative path just under PATH_MAX");
      assert.equal(r.new_deep, "ok", "a new tree deeper than PATH_MAX");
      assert.deepEqual(
        r.lower_deep,
        ["deep lower", "deep lower+"],
        "write at the bottom of a deep lower tree",
      );
    },
  }),
  posixCase({
    area: "names",
    name: "names that are not UTF-8: create, list, read, rename, delete (also lower ones)",
    layout: {
      prepareLower: (dir) => {
        fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), Buffer.from([0x6c, 0xff, 0xfe])]), "lower");
      },
    },
    async run(env) {
      const at = (name: number[]) => Buffer.concat([Buffer.from(`${env.root}/`), Buffer.from(name)]);
      const lowerName = [0x6c, 0xff, 0xfe];
      const latin1 = [0x63, 0x61, 0x66, 0xe9];
      await fsp.writeFile(at(latin1), "café in latin-1");
      const names = (await fsp.readdir(Buffer.from(env.root), { encoding: "buffer" })).map((b) =>
        b.toString("hex"),
      );
      assert.deepEqual(
        names.sort(),
        [Buffer.from(latin1), Buffer.from(lowerName)].map((b) => b.toString("hex")).sort(),
      );
      assert.equal(await readText(at(lowerName)), "lower");
      await fsp.rename(at(lowerName), at([0x80, 0x81]));
      assert.equal(await readText(at([0x80, 0x81])), "lower");
      assert.equal(await code(fsp.lstat(at(lowerName))), "ENOENT");
      await fsp.unlink(at([0x80, 0x81]));
      await fsp.unlink(at(latin1));
      assert.deepEqual(await fsp.readdir(env.root), []);
    },
  }),
];
