/** Permission checks and ownership, exercised as unprivileged users (setpriv). */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { haveCommand, mustRun, py, runChild } from "../../helpers/syscalls";
import { posixCase, type PosixCase } from "./case";
import { fsp, GROUP, lstat, OTHER, readText, USER } from "./util";

const needAcl = (): string | undefined =>
  haveCommand("setfacl") ? undefined : "setfacl not installed (Debian package acl)";

/** `getfacl` without header and effective-rights comments, numeric ids. */
async function getfacl(p: string): Promise<string> {
  return `${(await mustRun("getfacl", ["-cpnE", p])).trimEnd()}\n`;
}

/** The text getfacl -cpnE prints for an access ACL with one named entry. */
function aclText(user: string, named: string, group: string, mask: string, other: string): string {
  return `user::${user}\n${named}\ngroup::${group}\nmask::${mask}\nother::${other}\n`;
}

export const permCases: PosixCase[] = [
  posixCase({
    area: "perms",
    name: "a write by a non-owner clears set-user-ID and set-group-ID (lower file)",
    layout: {
      lower: { s: "payload" },
      prepareLower: (dir) => fs.chmodSync(`${dir}/s`, 0o6777),
    },
    async run(env) {
      assert.equal((await lstat(env.at("s"))).mode & 0o7777, 0o6777);
      const r = await py(
        `fd = os.open(A[0], os.O_WRONLY)
out["w"] = attempt(os.write, fd, b"X")
os.close(fd)
out["mode"] = os.lstat(A[0]).st_mode & 0o7777`,
        [env.at("s")],
        { uid: USER },
      );
      assert.equal(r.w, 1);
      assert.equal(r.mode, 0o777, "S_ISUID and S_ISGID are cleared");
      assert.equal(await readText(env.at("s")), "Xayload");
    },
  }),
  posixCase({
    area: "perms",
    name: "sticky directory: only a file's owner may delete or rename it",
    layout: {
      lower: { tmp: { mine: "m", theirs: "t" } },
      prepareLower: (dir) => {
        fs.chmodSync(`${dir}/tmp`, 0o1777);
        fs.chmodSync(`${dir}/tmp/mine`, 0o666);
        fs.chmodSync(`${dir}/tmp/theirs`, 0o666);
        fs.chownSync(`${dir}/tmp/mine`, USER, USER);
        fs.chownSync(`${dir}/tmp/theirs`, OTHER, OTHER);
      },
    },
    async run(env) {
      const r = await py(
        `d = A[0]
out["unlink_theirs"] = attempt(os.unlink, d + b"/theirs")
out["rename_theirs"] = attempt(os.rename, d + b"/theirs", d + b"/stolen")
out["rename_over_theirs"] = attempt(os.rename, d + b"/mine", d + b"/theirs")
out["write_theirs"] = attempt(lambda: os.close(os.open(d + b"/theirs", os.O_WRONLY | os.O_APPEND)))
out["unlink_mine"] = attempt(os.unlink, d + b"/mine")
fd = os.open(d + b"/new", os.O_WRONLY | os.O_CREAT, 0o644); os.close(fd)
out["rename_new"] = attempt(os.rename, d + b"/new", d + b"/new2")
out["unlink_new"] = attempt(os.unlink, d + b"/new2")
out["left"] = sorted(os.listdir(d))`,
        [env.at("tmp")],
        { uid: USER },
      );
      assert.equal(r.unlink_theirs, "EPERM");
      assert.equal(r.rename_theirs, "EPERM");
      assert.equal(r.rename_over_theirs, "EPERM");
      assert.equal(r.write_theirs, "ok", "the mode still allows writing");
      assert.equal(r.unlink_mine, "ok");
      assert.equal(r.rename_new, "ok");
      assert.equal(r.unlink_new, "ok");
      assert.deepEqual(r.left, ["theirs"]);
    },
  }),
  posixCase({
    area: "perms",
    name: "permission checks for another user: read, write, search, create, chmod",
    layout: {
      lower: {
        secret: "s",
        pub: "p",
        shared: "sh",
        rodir: {},
        xonly: { f: "in xonly" },
        closed: { f: "in closed" },
      },
      prepareLower: (dir) => {
        fs.chmodSync(`${dir}/secret`, 0o600);
        fs.chmodSync(`${dir}/pub`, 0o644);
        fs.chmodSync(`${dir}/shared`, 0o666);
        fs.chmodSync(`${dir}/rodir`, 0o755);
        fs.chmodSync(`${dir}/xonly`, 0o711);
        fs.chmodSync(`${dir}/closed`, 0o700);
      },
    },
    async run(env) {
      const r = await py(
        `def rd(p):
    with open(p, "rb") as f: return f.read().decode()
def wr(p, data):
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    try: os.write(fd, data)
    finally: os.close(fd)
def create(p):
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
r = A[0] + b"/"
out["read_secret"] = attempt(rd, r + b"secret")
out["read_pub"] = attempt(rd, r + b"pub")
out["write_pub"] = attempt(wr, r + b"pub", b"x")
out["write_shared"] = attempt(wr, r + b"shared", b"by user")
out["create_rodir"] = attempt(create, r + b"rodir/f")
out["mkdir_rodir"] = attempt(os.mkdir, r + b"rodir/d")
out["list_xonly"] = attempt(os.listdir, r + b"xonly")
out["read_xonly_f"] = attempt(rd, r + b"xonly/f")
out["stat_closed_f"] = attempt(lambda: os.lstat(r + b"closed/f") and None)
out["chmod_pub"] = attempt(os.chmod, r + b"pub", 0o666)
out["unlink_pub"] = attempt(os.unlink, r + b"pub")
out["access_w_pub"] = os.access(r + b"pub", os.W_OK)
out["access_r_pub"] = os.access(r + b"pub", os.R_OK)`,
        [env.root],
        { uid: USER },
      );
      assert.deepEqual(r, {
        read_secret: "EACCES",
        read_pub: "p",
        write_pub: "EACCES",
        write_shared: "ok",
        create_rodir: "EACCES",
        mkdir_rodir: "EACCES",
        list_xonly: "EACCES",
        read_xonly_f: "in xonly",
        stat_closed_f: "EACCES",
        chmod_pub: "EPERM",
        unlink_pub: "EACCES",
        access_w_pub: false,
        access_r_pub: true,
      });
      assert.equal(await readText(env.at("shared")), "by user");
      assert.equal((await lstat(env.at("shared"))).uid, 0, "a copy-up by another user keeps the owner");
    },
  }),
  posixCase({
    area: "perms",
    name: "new objects belong to their creator; a set-group-ID directory passes its group down",
    layout: {
      lower: { pub: {}, sg: {} },
      prepareLower: (dir) => {
        fs.chmodSync(`${dir}/pub`, 0o1777);
        fs.chownSync(`${dir}/sg`, 0, GROUP);
        fs.chmodSync(`${dir}/sg`, 0o2777);
      },
    },
    async run(env) {
      const r = await py(
        `res = {}
for d in (b"pub", b"sg"):
    p = A[0] + b"/" + d + b"/"
    os.close(os.open(p + b"f", os.O_WRONLY | os.O_CREAT, 0o644))
    os.mkdir(p + b"d", 0o755)
    os.symlink(b"f", p + b"l")
    os.mkfifo(p + b"p", 0o644)
    for n in (b"f", b"d", b"l", b"p"):
        s = os.lstat(p + n)
        res[(d + b"/" + n).decode()] = [s.st_uid, s.st_gid, s.st_mode & 0o7777]
out["res"] = res`,
        [env.root],
        { uid: USER, gid: USER },
      );
      assert.deepEqual(r.res, {
        "pub/f": [USER, USER, 0o644],
        "pub/d": [USER, USER, 0o755],
        "pub/l": [USER, USER, 0o777],
        "pub/p": [USER, USER, 0o644],
        "sg/f": [USER, GROUP, 0o644],
        "sg/d": [USER, GROUP, 0o2755],
        "sg/l": [USER, GROUP, 0o777],
        "sg/p": [USER, GROUP, 0o644],
      });
    },
  }),
  posixCase({
    area: "perms",
    name: "POSIX ACLs are enforced: a named user gets what the mode denies, the mask and chmod limit it",
    requires: needAcl,
    layout: {
      lower: { f: "secret", plain: "p", d: {} },
      prepareLower: (dir) => {
        fs.chmodSync(`${dir}/f`, 0o600);
        fs.chmodSync(`${dir}/plain`, 0o644);
        fs.chmodSync(`${dir}/d`, 0o755);
      },
    },
    async run(env) {
      // No ACL: "no such attribute", on a lower file and on a new one.
      await fsp.writeFile(env.at("new"), "n");
      const none = await py(
        `out["lower"] = attempt(os.getxattr, A[0], "system.posix_acl_access")
out["new"] = attempt(os.getxattr, A[1], "system.posix_acl_access")
out["dir"] = attempt(os.getxattr, A[2], "system.posix_acl_default")`,
        [env.at("plain"), env.at("new"), env.at("d")],
      );
      assert.deepEqual(none, { lower: "ENODATA", new: "ENODATA", dir: "ENODATA" });
      // A named-user entry on a lower file (0600, root's): that user may read and write, others not.
      await mustRun("setfacl", ["-m", `u:${USER}:rw`, env.at("f")]);
      assert.equal(await getfacl(env.at("f")), aclText("rw-", `user:${USER}:rw-`, "---", "rw-", "---"));
      assert.equal((await lstat(env.at("f"))).mode & 0o777, 0o660, "the group bits show the ACL mask");
      const access = `out["read"] = attempt(lambda: open(A[0]).read())
out["write"] = attempt(lambda: os.close(os.open(A[0], os.O_WRONLY | os.O_APPEND)))`;
      assert.deepEqual(await py(access, [env.at("f")], { uid: USER, gid: USER }), {
        read: "secret",
        write: "ok",
      });
      assert.deepEqual(await py(access, [env.at("f")], { uid: OTHER, gid: OTHER }), {
        read: "EACCES",
        write: "EACCES",
      });
      // chmod sets the mask: the entry keeps rw-, but only r-- is effective.
      await fsp.chmod(env.at("f"), 0o640);
      assert.equal(await getfacl(env.at("f")), aclText("rw-", `user:${USER}:rw-`, "---", "r--", "---"));
      assert.deepEqual(await py(access, [env.at("f")], { uid: USER, gid: USER }), {
        read: "secret",
        write: "EACCES",
      });
      // An empty mask denies everything the entry grants.
      await mustRun("setfacl", ["-m", "m::---", env.at("f")]);
      assert.equal((await lstat(env.at("f"))).mode & 0o777, 0o600);
      assert.deepEqual(await py(access, [env.at("f")], { uid: USER, gid: USER }), {
        read: "EACCES",
        write: "EACCES",
      });
      // An entry on a lower directory lets that user create in it.
      await mustRun("setfacl", ["-m", `u:${USER}:rwx`, env.at("d")]);
      const made = await py(`out["r"] = attempt(lambda: open(A[0], "w").write("u"))`, [env.at("d/by-user")], {
        uid: USER,
        gid: USER,
      });
      assert.equal(made.r, 1);
      assert.equal((await lstat(env.at("d/by-user"))).uid, USER);
    },
  }),
  posixCase({
    area: "perms",
    name: "a default ACL is inherited by new files and directories, and replaces the umask",
    requires: needAcl,
    layout: {
      lower: { d: { sub: { old: "o" } } },
      prepareLower: (dir) => {
        fs.chmodSync(`${dir}/d`, 0o755);
        fs.chmodSync(`${dir}/d/sub`, 0o755);
      },
    },
    async run(env) {
      await mustRun("setfacl", ["-d", "-m", `u:${USER}:rwx,g::r-x,o::---`, env.at("d")]);
      await fsp.rm(env.at("d/sub"), { recursive: true }); // "sub" is created again over a lower dir
      const r = await py(
        `os.umask(0o077)
d = A[0]
os.close(os.open(d + b"/f", os.O_WRONLY | os.O_CREAT, 0o666))
os.mkdir(d + b"/s", 0o777)
os.mkdir(d + b"/sub", 0o777)
os.mkfifo(d + b"/p", 0o666)
os.close(os.open(d + b"/s/nested", os.O_WRONLY | os.O_CREAT, 0o640))
out["modes"] = {n: os.lstat(d + b"/" + n.encode()).st_mode & 0o7777 for n in ("f", "s", "sub", "p", "s/nested")}`,
        [env.at("d")],
      );
      assert.deepEqual(r.modes, { f: 0o660, s: 0o770, sub: 0o770, p: 0o660, "s/nested": 0o640 });
      const defaults = ["user::rwx", `user:${USER}:rwx`, "group::r-x", "mask::rwx", "other::---"];
      const inherited = defaults.map((e) => `default:${e}`).join("\n");
      const fileAcl = aclText("rw-", `user:${USER}:rwx`, "r-x", "rw-", "---");
      const dirAcl = `${aclText("rwx", `user:${USER}:rwx`, "r-x", "rwx", "---")}${inherited}\n`;
      assert.equal(await getfacl(env.at("d/f")), fileAcl);
      assert.equal(await getfacl(env.at("d/p")), fileAcl);
      assert.equal(await getfacl(env.at("d/s")), dirAcl);
      assert.equal(await getfacl(env.at("d/sub")), dirAcl);
      assert.equal(
        await getfacl(env.at("d/s/nested")),
        aclText("rw-", `user:${USER}:rwx`, "r-x", "r--", "---"),
      );
      assert.deepEqual(await fsp.readdir(env.at("d/sub")), [], "the new sub is not merged with the old one");
      const read = await runChild("cat", [env.at("d/f")], { uid: USER });
      assert.equal(read.stderr.trim(), "", "the inherited entry is enforced");
    },
  }),
  posixCase({
    area: "perms",
    name: "the umask applies to new objects where no default ACL is inherited",
    layout: { lower: { d: {} }, prepareLower: (dir) => fs.chmodSync(`${dir}/d`, 0o755) },
    async run(env) {
      const r = await py(
        `os.umask(0o027)
modes = {}
for label, d in (("root", A[0]), ("d", A[1])):
    os.close(os.open(d + b"/f", os.O_WRONLY | os.O_CREAT, 0o666))
    os.mkdir(d + b"/s", 0o777)
    os.mkfifo(d + b"/p", 0o666)
    os.mknod(d + b"/n", 0o100666)
    os.symlink(b"f", d + b"/l")
    for n in ("f", "s", "p", "n", "l"):
        modes[label + "/" + n] = os.lstat(d + b"/" + n.encode()).st_mode & 0o7777
out["modes"] = modes`,
        [env.root, env.at("d")],
      );
      const want = { f: 0o640, s: 0o750, p: 0o640, n: 0o640, l: 0o777 };
      const expected: Record<string, number> = {};
      for (const label of ["root", "d"]) {
        for (const [n, m] of Object.entries(want)) expected[`${label}/${n}`] = m;
      }
      assert.deepEqual(r.modes, expected);
    },
  }),
];
