/**
 * Generic mount flags reach the kernel mount, in every way a union is mounted, and the kernel enforces
 * them: `nosuid` (a set-uid-root file runs as its caller), `noexec`, `nodev`, `ro`, `noatime`. Also the
 * mount(8) helper's share: fstab-only options (`nofail`, `_netdev`, `x-systemd.*` …) are accepted, and
 * `remount` changes the generic flags of a live mount.
 *
 * Forms: the branch list (`U:L MP`), `-o lowerdir=…,upperdir=…,workdir=… MP`, mount(8) with this build's
 * helper (test/helpers/mount8.ts), and the library (`mount({ options: { flags } })`, in a child process).
 * Every mount is taken down in teardown; set-id files are run by uid 65534 (skipped, saying why, when it
 * cannot reach the temp dir).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { MOUNT_HELPER, mountFstabThroughMount8 } from "../helpers/mount8";
import { branchTree, MOUNT_FORMS, type BranchTree as Tree } from "../helpers/forms";
import { isMounted, mountsAt } from "../helpers/mounts";
import { PYTHON, runChild } from "../helpers/syscalls";
import { Cleanup, cliBuilt, CLI_PATH, useCleanup, blockedForOthers } from "../helpers/unionfs";

const NOBODY = 65534;

/** A tree whose lower branch holds a set-uid-root copy of id(1). */
function makeTree(t: Cleanup): Tree {
  const tree = branchTree(t, "flags");
  fs.copyFileSync("/usr/bin/id", path.join(tree.lower, "id"));
  fs.chmodSync(path.join(tree.lower, "id"), 0o4755);
  return tree;
}

/** The per-mount options the kernel shows for the union at `mnt` (findmnt's OPTIONS column). */
function vfsOptions(mnt: string): string[] {
  const row = mountsAt(mnt).find((m) => m.fsType === "fuse.unionfs-ts");
  assert.ok(row, `no union mounted at ${mnt}`);
  return row.options.split(",");
}

/** The library's mount() in a child process that keeps the mount until its stdin closes. */
async function libraryMount(t: Cleanup, tr: Tree, flags: readonly string[]): Promise<void> {
  const lib = path.resolve(path.dirname(CLI_PATH), "..", "index.js");
  const script = `
    const { mount } = require(${JSON.stringify(lib)});
    mount({ layers: [${JSON.stringify(tr.lower)}], upper: ${JSON.stringify(tr.upper)},
            mountpoint: ${JSON.stringify(tr.mnt)}, options: { flags: ${JSON.stringify(flags)} } })
      .then((m) => { console.log("mounted"); process.stdin.on("end", () => m.unmount()); process.stdin.resume(); })
      .catch((e) => { console.error(e.message); process.exit(2); });`;
  const { spawn } = await import("node:child_process");
  const child = spawn(process.execPath, ["-e", script], { stdio: ["pipe", "pipe", "pipe"] });
  t.defer("end the library child", async () => {
    child.stdin.end();
    if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
  });
  t.guardMountpoint(tr.mnt);
  const out = await new Promise<string>((resolve) => {
    let text = "";
    child.stdout.on("data", (b: Buffer) => {
      text += b.toString();
      if (text.includes("mounted")) resolve(text);
    });
    child.once("exit", () => resolve(text));
  });
  assert.match(out, /mounted/, "the library mount failed");
}

type Form = { name: string; mount(t: Cleanup, tr: Tree, flags: readonly string[]): Promise<void> };

/** Every mount form, each given the flags as one -o list, and the library. */
const FORMS: readonly Form[] = [
  ...MOUNT_FORMS.map((f) => ({
    name: f.name,
    mount: (t: Cleanup, tr: Tree, fl: readonly string[]) => f.mount(t, tr, [fl.join(",")]),
  })),
  { name: "library", mount: libraryMount },
];

describe("mount flags reach the kernel", function () {
  this.timeout(60_000);
  const t = useCleanup();

  before(function () {
    if (process.getuid?.() !== 0 || !cliBuilt()) this.skip();
  });

  for (const form of FORMS) {
    it(`regression: ${form.name} -o nosuid,nodev,noexec,noatime: shown by the kernel and enforced`, async function () {
      const blocked = blockedForOthers(os.tmpdir());
      if (blocked !== undefined) this.skip();
      const tr = makeTree(t);
      await form.mount(t, tr, ["nosuid", "nodev", "noexec", "noatime"]);
      const opts = vfsOptions(tr.mnt);
      for (const f of ["nosuid", "nodev", "noexec", "noatime"])
        assert.ok(opts.includes(f), `${f} in ${opts.join(",")}`);
      const run = await runChild(path.join(tr.mnt, "id"), ["-u"], { uid: NOBODY });
      assert.notEqual(run.status, 0, "noexec: the file ran");
      const viaLoader = await runChild(PYTHON, [
        "-c",
        "import os,sys; print(os.stat(sys.argv[1]).st_mode & 0o7777)",
        path.join(tr.mnt, "id"),
      ]);
      assert.equal(viaLoader.stdout.trim(), String(0o4755), "the file itself still carries its set-uid bit");
    });
  }

  it("regression: nosuid alone: a set-uid-root file runs as its caller (it ran as root)", async function () {
    if (blockedForOthers(os.tmpdir()) !== undefined) this.skip();
    const tr = makeTree(t);
    await FORMS[0]?.mount(t, tr, ["nosuid"]);
    const r = await runChild(path.join(tr.mnt, "id"), ["-u"], { uid: NOBODY });
    assert.equal(r.stdout.trim(), String(NOBODY), r.stderr);
  });

  it("-o ro: the kernel mount is read-only, writes fail with EROFS", async function () {
    const tr = makeTree(t);
    await FORMS[0]?.mount(t, tr, ["ro"]);
    assert.ok(vfsOptions(tr.mnt).includes("ro"));
    const r = await runChild("touch", [path.join(tr.mnt, "new")]);
    assert.match(r.stderr, /Read-only file system/);
    assert.deepEqual(fs.readdirSync(tr.upper), []);
  });

  it("regression: the mount(8) helper accepts fstab options (nofail, _netdev, noauto, user, x-systemd.*)", async function () {
    const tr = makeTree(t);
    t.guardMountpoint(tr.mnt);
    const r = await runChild(process.execPath, [
      MOUNT_HELPER,
      `${tr.upper}:${tr.lower}`,
      tr.mnt,
      "-o",
      "rw,nofail,_netdev,noauto,user,x-systemd.automount,x-systemd.requires=/,comment=x,nodev",
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(vfsOptions(tr.mnt).includes("nodev"));
  });

  it("regression: an fstab line with nofail, _netdev, noauto, user, x-systemd.* mounts through mount(8) (mount -a said 32)", async function () {
    const tr = makeTree(t);
    const options =
      "defaults,nofail,_netdev,noauto,user,x-systemd.automount,x-systemd.requires=/,comment=x,nodev";
    await mountFstabThroughMount8(t, tr.root, `${tr.upper}:${tr.lower}`, tr.mnt, options);
    const opts = vfsOptions(tr.mnt);
    for (const f of ["nodev", "nosuid", "noexec"]) assert.ok(opts.includes(f), `${f} in ${opts.join(",")}`); // user implies the last two
    assert.deepEqual(fs.readdirSync(tr.mnt), ["id"]);
  });

  it("regression: the mount(8) helper exits 32 on a mount failure, as util-linux's helpers do (it exited 2)", async function () {
    const tr = makeTree(t);
    t.guardMountpoint(tr.mnt);
    for (const [src, opts] of [
      [`${tr.upper}:${path.join(tr.lower, "missing")}`, "rw"],
      [`${tr.upper}:${tr.lower}`, "rw,bogus"],
    ] as const) {
      const r = await runChild(process.execPath, [MOUNT_HELPER, src, tr.mnt, "-o", opts]);
      assert.equal(r.status, 32, r.stderr);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.equal(isMounted(tr.mnt), false);
    }
  });

  for (const form of FORMS.slice(0, 2)) {
    it(`regression: ${form.name}: remount,ro and remount,rw through the mount(8) helper change the live mount`, async function () {
      const tr = makeTree(t);
      await form.mount(t, tr, []);
      const helper = (opts: string): Promise<{ status: number | null; stderr: string }> =>
        runChild(process.execPath, [MOUNT_HELPER, `${tr.upper}:${tr.lower}`, tr.mnt, "-o", opts]);
      const ro = await helper("rw,relatime,user_id=0,group_id=0,default_permissions,allow_other,remount,ro");
      assert.equal(ro.status, 0, ro.stderr);
      assert.ok(vfsOptions(tr.mnt).includes("ro"));
      assert.match((await runChild("touch", [path.join(tr.mnt, "a")])).stderr, /Read-only file system/);
      const rw = await helper("remount,rw,nosuid");
      assert.equal(rw.status, 0, rw.stderr);
      assert.ok(vfsOptions(tr.mnt).includes("rw") && vfsOptions(tr.mnt).includes("nosuid"));
      assert.equal((await runChild("touch", [path.join(tr.mnt, "a")])).status, 0);
      assert.ok(fs.existsSync(path.join(tr.upper, "a")));
      const bad = await helper("remount,lowerdir=/x");
      assert.equal(bad.status, 1);
      assert.match(bad.stderr, /^mount\.fuse\.unionfs-ts: remount: only generic flags can change[^\n]*\n$/);
    });
  }
});
