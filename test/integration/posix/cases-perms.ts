/** Permission checks and ownership, exercised as unprivileged users (setpriv). */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import { haveCommand, mustRun, py, runChild } from "../../helpers/syscalls";
import { posixCase, type PosixCase } from "./case";
import { fsp, GROUP, lstat, OTHER, readText, USER } from "./util";

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
    name: "a POSIX ACL entry grants another user access (setfacl on a lower file)",
    requires: () => (haveCommand("setfacl") ? undefined : "setfacl not installed (Debian package acl)"),
    layout: {
      lower: { f: "secret", d: {} },
      prepareLower: (dir) => {
        fs.chmodSync(`${dir}/f`, 0o600);
        fs.chmodSync(`${dir}/d`, 0o755);
      },
    },
    async run(env) {
      await mustRun("setfacl", ["-m", `u:${USER}:rw`, env.at("f")]);
      const acl = await mustRun("getfacl", ["-cpn", env.at("f")]);
      assert.match(acl, new RegExp(`^user:${USER}:rw-$`, "m"));
      assert.equal((await lstat(env.at("f"))).mode & 0o777, 0o660, "the group bits show the ACL mask");
      const read = await runChild("cat", [env.at("f")], { uid: USER });
      assert.equal(read.stderr.trim(), "");
      assert.equal(read.stdout, "secret", "the ACL lets the user read");
      // A default ACL on a directory is inherited by what is created in it.
      await mustRun("setfacl", ["-d", "-m", `u:${USER}:rwx`, env.at("d")]);
      await fsp.writeFile(env.at("d/new"), "n");
      const inherited = await mustRun("getfacl", ["-cpn", env.at("d/new")]);
      assert.match(inherited, new RegExp(`^user:${USER}:rwx\\b`, "m"));
    },
    differs: {
      "unionfs-ts": "known bug B5: ACLs are stored but not enforced (FUSE_POSIX_ACL is not negotiated)",
    },
  }),
];
