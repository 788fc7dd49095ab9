/**
 * Tar layers through a real mount: read-only branches that are tar archives (plain and gzip), mounted
 * without unpacking them.
 *
 * - The oracle: kernel overlayfs over the layers unpacked (GNU tar, whiteouts converted to overlay's
 *   format, as an engine unpacks OCI layers for overlayfs) against unionfs-ts over the archives, in both
 *   CLI forms. The same operations run on both (copy-up from an archive, deletes that whiteout archive
 *   files, renames, links to archive files, chmod, xattrs); each call's result and the whole view after it
 *   must be equal, and the archives must not change.
 * - Whiteouts and opaque directories inside archives, hard links within and across layers, owners,
 *   devices, ns times and xattrs as unpacked.
 * - The saved index: written beside the archive on the first mount, used by the next.
 * - Refusals: a corrupt archive, a member escaping the root, a tar as the writable branch: one line,
 *   nothing mounted.
 */
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { lsetxattr, mknod } from "../../src/sys/libc";
import { isMounted, run } from "../helpers/mounts";
import { diffSnapshots, snapshotTree, type SnapshotEntry } from "../helpers/snapshot";
import { writeTree, type TreeSpec } from "../helpers/tmp";
import { cliBuilt, cliMount, runCli, useCleanup, type Cleanup } from "../helpers/unionfs";

const fsp = fs.promises;

/** A layer: a tree, then hard links and owners/devices/xattrs made by hand. */
interface LayerSpec {
  tree: TreeSpec;
  links?: [string, string][];
  chown?: [string, number, number][];
  devices?: [string, number, number][];
  xattrs?: [string, string, string][];
  gzip: boolean;
}

/** Layers top first. `.wh.NAME` and `.wh..wh..opq` are OCI whiteouts, as in an image's layer tarballs. */
const LAYERS: LayerSpec[] = [
  {
    gzip: true,
    tree: {
      ".wh.gone-top": "",
      etc: { hostname: "top\n", ".wh.motd": "" },
      opaque: { ".wh..wh..opq": "", only: "only this survives\n" },
      h2: "h2 replaced in the top layer\n",
    },
  },
  {
    gzip: false,
    tree: {
      etc: { hosts: "127.0.0.1 mid\n", motd: "motd from mid\n" },
      opaque: { mid: "hidden by the top's opaque marker\n" },
      "gone-top": "whited out by the top\n",
      shared: "mid's shared\n",
      bin: { tool: "#!/bin/sh\necho mid\n" },
    },
    links: [["shared", "shared-link"]],
  },
  {
    gzip: true,
    tree: {
      etc: { passwd: "root:x:0:0\n", hosts: "127.0.0.1 base\n", hostname: "base\n" },
      opaque: { base: "hidden\n", sub: { deep: "hidden too\n" } },
      h1: "one inode, two names\n",
      data: { "big.bin": Buffer.alloc(3 * 1024 * 1024 + 123, 0x5a), "small.txt": "small\n" },
      lnk: Buffer.from(""),
      owned: "owned by 1234:5678\n",
    },
    links: [["h1", "h2"]],
    chown: [["owned", 1234, 5678]],
    devices: [["null", 1, 3]],
    xattrs: [["owned", "user.origin", "base layer"]],
  },
];

function sha(p: string): string {
  return createHash("sha256").update(fs.readFileSync(p)).digest("hex");
}

/** Builds layer `i` as a directory and packs it into an archive (PAX: ns times, xattrs). */
function buildArchive(t: Cleanup, root: string, spec: LayerSpec, i: number): string {
  const src = path.join(root, `src${i}`);
  fs.mkdirSync(src);
  writeTree(src, spec.tree);
  if (i === 2) {
    fs.rmSync(path.join(src, "lnk"));
    fs.symlinkSync("etc/passwd", path.join(src, "lnk"));
  }
  for (const [a, b] of spec.links ?? []) fs.linkSync(path.join(src, a), path.join(src, b));
  for (const [p, uid, gid] of spec.chown ?? []) fs.chownSync(path.join(src, p), uid, gid);
  for (const [p, major, minor] of spec.devices ?? []) {
    mknod(path.join(src, p), 0o020644, major * 256 + minor);
  }
  for (const [p, name, value] of spec.xattrs ?? []) lsetxattr(path.join(src, p), name, Buffer.from(value), 0);
  const archive = path.join(root, `layer${i}.tar${spec.gzip ? ".gz" : ""}`);
  const args = [
    "--xattrs",
    "--format=pax",
    "--numeric-owner",
    spec.gzip ? "-czf" : "-cf",
    archive,
    "-C",
    src,
    ".",
  ];
  const r = run("tar", args);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  t.defer(`remove ${archive}.unionfs-index`, () => fs.rmSync(`${archive}.unionfs-index`, { force: true }));
  return archive;
}

/** Unpacks an archive as an engine does for overlayfs: GNU tar, then OCI whiteouts in overlay's format. */
function unpackForOverlay(archive: string, dir: string): void {
  fs.mkdirSync(dir);
  const r = run("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", archive, "-C", dir]);
  if (r.status !== 0) throw new Error(`tar -x: ${r.stderr}`);
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name);
      if (name === ".wh..wh..opq") {
        fs.rmSync(p);
        lsetxattr(d, "trusted.overlay.opaque", Buffer.from("y"), 0);
      } else if (name.startsWith(".wh.")) {
        fs.rmSync(p);
        mknod(path.join(d, name.slice(4)), 0o020000, 0);
      } else if (fs.lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
}

type Result = { ok: unknown } | { code: string };

async function attempt(fn: () => Promise<unknown>): Promise<Result> {
  try {
    return { ok: await fn() };
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}

interface Step {
  desc: string;
  run: (at: (rel: string) => string) => Promise<unknown>;
}

const step = (desc: string, fn: Step["run"]): Step => ({ desc, run: fn });

/** An attribute through the mount (getfattr: a child process, so a hung daemon cannot freeze the test). */
async function getfattr(p: string, name: string): Promise<string> {
  const r = run("getfattr", ["-h", "--only-values", "-n", name, p]);
  if (r.status !== 0)
    throw Object.assign(new Error(r.stderr), {
      code: r.stderr.includes("No such attribute") ? "ENODATA" : "EIO",
    });
  return r.stdout;
}

/** mtime of every non-directory of the view: the archives' ns times as unpacked. */
async function mtimes(mnt: string, view: readonly SnapshotEntry[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of view) {
    if (e.type !== "dir")
      out[e.path] = String((await fsp.lstat(path.join(mnt, e.path), { bigint: true })).mtimeNs);
  }
  return out;
}

const STEPS: Step[] = [
  step("read etc/hosts", (at) => fsp.readFile(at("etc/hosts"), "utf8")),
  step("read etc/motd (whited out)", (at) => fsp.readFile(at("etc/motd"), "utf8")),
  step("list opaque", async (at) => (await fsp.readdir(at("opaque"))).sort()),
  step("stat h1 (nlink of a lower hard link)", async (at) => (await fsp.stat(at("h1"))).nlink),
  step("append to etc/passwd (copy-up from a gzip archive)", (at) =>
    fsp.appendFile(at("etc/passwd"), "me:x:1000\n"),
  ),
  step("write a byte in the middle of data/big.bin", async (at) => {
    const h = await fsp.open(at("data/big.bin"), "r+");
    await h.write(Buffer.from("!"), 0, 1, 2 * 1024 * 1024);
    await h.close();
  }),
  step("unlink bin/tool (from the plain archive)", (at) => fsp.unlink(at("bin/tool"))),
  step("rmdir bin", (at) => fsp.rmdir(at("bin"))),
  step("mkdir bin again", (at) => fsp.mkdir(at("bin"))),
  step("link h1 as h3 (a hard link to an archive file)", (at) => fsp.link(at("h1"), at("h3"))),
  step("write h1 (one name of a lower hard link)", (at) => fsp.writeFile(at("h1"), "changed\n")),
  step("stat shared-link", async (at) => (await fsp.stat(at("shared-link"))).nlink),
  step("rename data/small.txt to small.txt", (at) => fsp.rename(at("data/small.txt"), at("small.txt"))),
  step("chmod owned 600", (at) => fsp.chmod(at("owned"), 0o600)),
  step("readlink lnk", (at) => fsp.readlink(at("lnk"))),
  step("getxattr owned user.origin", (at) => getfattr(at("owned"), "user.origin")),
  step(
    "setxattr user.new on etc/hostname",
    async (at) => run("setfattr", ["-n", "user.new", "-v", "1", at("etc/hostname")]).status,
  ),
  step("unlink etc (a merged directory)", (at) => fsp.unlink(at("etc"))),
  step("rm -r opaque", (at) => fsp.rm(at("opaque"), { recursive: true })),
  step("getxattr etc/hostname user.new (copied up)", (at) => getfattr(at("etc/hostname"), "user.new")),
  step("create gone-top", (at) => fsp.writeFile(at("gone-top"), "back\n")),
];

/** What overlayfs answers to some steps (by index): the scenario proves itself before the union runs. */
const OVERLAY_SAYS: [number, Result][] = [
  [0, { ok: "127.0.0.1 mid\n" }],
  [1, { code: "ENOENT" }],
  [2, { ok: ["only"] }],
  [3, { ok: 2 }],
  [11, { ok: 2 }],
  [14, { ok: "etc/passwd" }],
  [15, { ok: "base layer" }],
  [17, { code: "EISDIR" }],
];

/** Runs the steps, returning each result and the view after it (and the first view's mtimes). */
async function runSteps(
  mnt: string,
): Promise<{ results: Result[]; views: SnapshotEntry[][]; times: Record<string, string> }> {
  const at = (rel: string): string => path.join(mnt, rel);
  const results: Result[] = [];
  const views = [await snapshotTree(mnt)];
  const times = await mtimes(mnt, views[0]!);
  for (const s of STEPS) {
    results.push(await attempt(() => s.run(at)));
    views.push(await snapshotTree(mnt));
  }
  return { results, views, times };
}

describe("tar layers through a mount", function () {
  this.timeout(120_000);
  const t = useCleanup();

  before(function () {
    if (!cliBuilt()) this.skip();
    if (process.getuid?.() !== 0) this.skip();
  });

  function setup(): { root: string; archives: string[]; unpacked: string[] } {
    const root = t.tempDir("tarlayers");
    const archives = LAYERS.map((l, i) => buildArchive(t, root, l, i));
    const unpacked = archives.map((a, i) => {
      const d = path.join(root, `unpacked${i}`);
      unpackForOverlay(a, d);
      return d;
    });
    return { root, archives, unpacked };
  }

  for (const form of ["branches", "lowerdir"] as const) {
    it(`shows and changes what kernel overlayfs over the unpacked layers does (${form} form)`, async () => {
      const { root, archives, unpacked } = setup();
      const dirs = ["ovl-upper", "ovl-work", "ovl", "upper", "mnt", "work"].map((d) => path.join(root, d));
      for (const d of dirs) fs.mkdirSync(d);
      const [ovlUpper, ovlWork, ovlMnt, upper, mnt, work] = dirs;
      const hashes = archives.map(sha);
      t.overlay({ lower: unpacked, upper: ovlUpper!, work: ovlWork!, mnt: ovlMnt! });
      const expected = await runSteps(ovlMnt!);
      for (const [i, want] of OVERLAY_SAYS)
        assert.deepEqual(expected.results[i], want, `overlayfs: ${STEPS[i]!.desc}`);
      const args =
        form === "branches"
          ? [[upper, ...archives].join(":"), mnt!]
          : ["-o", `lowerdir=${archives.join(":")},upperdir=${upper},workdir=${work}`, mnt!];
      await cliMount(t, args, mnt!);
      const got = await runSteps(mnt!);
      assert.deepEqual(diffSnapshots(expected.views[0]!, got.views[0]!), [], "initial view");
      assert.deepEqual(got.times, expected.times, "mtimes");
      STEPS.forEach((s, i) => {
        assert.deepEqual(got.results[i], expected.results[i], `${s.desc}: result`);
        const diff = diffSnapshots(expected.views[i + 1]!, got.views[i + 1]!);
        assert.deepEqual(diff, [], `after ${s.desc}:\n${diff.join("\n")}`);
      });
      assert.deepEqual(archives.map(sha), hashes, "an archive changed");
    });
  }

  it("saves the index beside the archive, or in the cache dir when its directory is read-only", async () => {
    const { root, archives } = setup();
    const mnt = path.join(root, "mnt");
    fs.mkdirSync(mnt);
    await cliMount(t, [archives.join(":").replace(/:/, "=ro:"), mnt], mnt);
    const first = await snapshotTree(mnt);
    assert.ok(first.some((e) => e.path === "opaque/only"));
    for (const a of archives) assert.ok(fs.existsSync(`${a}.unionfs-index`), a);
    t.guardMountpoint(mnt);
    run("umount", [mnt]);
    // The same archives through a read-only bind mount of their directory: indexes go to the cache.
    for (const a of archives) fs.rmSync(`${a}.unionfs-index`);
    const ro = path.join(root, "ro");
    fs.mkdirSync(ro);
    assert.equal(run("mount", ["--bind", "-o", "ro", root, ro]).status, 0);
    t.defer(`unmount ${ro}`, () => void run("umount", ["-l", ro]));
    const cache = path.join(root, "cache");
    const saved = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = cache;
    t.defer("restore XDG_CACHE_HOME", () => {
      if (saved === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = saved;
    });
    const viaRo = archives.map((a) => path.join(ro, path.basename(a)));
    const r = await runCli(["mount", `${viaRo.join(":").replace(/:/, "=ro:")}`, mnt]);
    t.guardMountpoint(mnt, r.tag);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.equal(fs.readdirSync(path.join(cache, "unionfs-ts")).length, archives.length);
    assert.deepEqual(await snapshotTree(mnt), first);
  });

  it("refuses a corrupt archive, an escaping member and a writable tar with one line, mounting nothing", async () => {
    const root = t.tempDir("tarbad");
    const mnt = path.join(root, "mnt");
    const upper = path.join(root, "upper");
    fs.mkdirSync(mnt);
    fs.mkdirSync(upper);
    fs.mkdirSync(path.join(root, "w"));
    const good = path.join(root, "good.tar");
    fs.writeFileSync(path.join(root, "f"), "x".repeat(5000));
    assert.equal(run("tar", ["-cf", good, "-C", root, "f"]).status, 0);
    const corrupt = path.join(root, "corrupt.tar.gz");
    const gz = zlib.gzipSync(fs.readFileSync(good));
    gz[gz.length - 6]! ^= 0xff; // the CRC
    fs.writeFileSync(corrupt, gz);
    const escape = path.join(root, "escape.tar");
    assert.equal(run("tar", ["-cPf", escape, path.join(root, "f")]).status, 0);
    const cases: [string[], RegExp][] = [
      [[`${upper}:${corrupt}`, mnt], /corrupt\.tar\.gz: corrupt gzip data: incorrect data check\n$/],
      [[`${upper}:${escape}`, mnt], /escape\.tar: member '.*\/f' has an absolute path/],
      [[`${good}:${upper}=ro`, mnt], /is a tar archive, which can only be read-only/],
      [["-o", `lowerdir=${escape},upperdir=${upper},workdir=${root}/w`, mnt], /has an absolute path/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(["mount", ...args]);
      t.guardMountpoint(mnt, r.tag);
      assert.notEqual(r.status, 0, args.join(" "));
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.ok(!isMounted(mnt), "something was mounted");
    }
  });
});
