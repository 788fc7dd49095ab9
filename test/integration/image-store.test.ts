/**
 * The image store end to end, against podman (issue #15):
 *
 * - podman builds two images on one base (`podman import` of a busybox root filesystem made here, with
 *   the host's setcap and getcap and their libraries, and 4 MiB of data) and saves them, one as a
 *   docker-archive, one as an oci-archive;
 * - `unionfs-ts load` reads both (a file and stdin): the base layer is unpacked once, so the second load
 *   grows the store by far less than the base (measured with du), and `images` shows podman's IDs;
 * - `run --image … --keep` changes files (adds one, deletes one, replaces a directory, sets a file
 *   capability with setcap); `commit` makes an image whose new layer holds exactly those changes (no
 *   init-layer files, `.wh.` whiteouts); `save` writes an oci-archive that `podman load` accepts with the
 *   same image ID, and `podman run` of it shows exactly the changed view, the capability intact (getcap,
 *   and the effective set of an unprivileged process that executes the file);
 * - `rmi` removes an image and only the layers nothing else uses, refusing while a container uses it.
 *
 * Without podman (only root and a static busybox): `run --image` stacks the store's own layer directories
 * (nothing copied), its writable layer gets only what COMMAND writes, `--keep`/`ps -a`/`rm`, and a
 * container name is never taken twice, and a kept container mounts by hand (`mount-overlay2` on the store's
 * overlay2 directory).
 *
 * Skipped, with the reason logged, without root, podman, runc, static busybox or setcap. Podman runs on a
 * private vfs store (no mounts); everything lives under one temp dir, removed in teardown with podman's
 * images and containers.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { list } from "tar";
import { run } from "../helpers/mounts";
import { readMountInfo } from "../helpers/mounts";
import {
  busyboxRootfs,
  Podman,
  podmanSkipReason,
  removeBlobCacheUnlessItExisted,
  show,
  staticBusybox,
  tarRootfs,
  which,
} from "../helpers/podman";
import { buildLayout } from "../helpers/image-archives";
import { file, symlink, type TreeSpec } from "../helpers/tmp";
import { CLI_PATH, runCli, useCleanup, type CliResult } from "../helpers/unionfs";

const REPO = "localhost/ufs-store";
const BASE = `${REPO}/base:1`;
const APP = `${REPO}/app:1`;
const OTHER = `${REPO}/other:1`;
const COMMITTED = `${REPO}/committed:1`;
const BASE_DATA = 4 << 20;

/** What the container changes: add, delete, replace a directory, a file capability. */
const CHANGES = [
  "echo added >/added",
  "rm /etc/doomed",
  "rm -rf /d && mkdir /d && echo new >/d/f",
  "mkdir /capbin && cp /bin/busybox /capbin/busybox",
  "setcap cap_net_bind_service+ep /capbin/busybox",
].join(" && ");

/** Inside a container: every name (one filesystem), then a checksum of every regular file. */
const VIEW = [
  "find / -xdev | sort",
  "echo ===",
  "find / -xdev -type f ! -path /etc/hostname ! -path /etc/hosts ! -path /etc/resolv.conf ! -path /run/.containerenv -exec md5sum {} + | sort -k2",
].join("; ");

function ok(r: CliResult, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status ?? r.signal}: ${r.stderr}`);
  return r.stdout;
}

/** Copies `bin` and the shared libraries `ldd` lists into `rootfs`, at the same paths. */
function copyWithLibraries(bin: string, rootfs: string): void {
  const ldd = run("ldd", [bin]);
  const libs = [...ldd.stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1] as string);
  for (const f of [bin, ...libs]) {
    const to = path.join(rootfs, f);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    if (!fs.existsSync(to)) fs.copyFileSync(f, to);
    fs.chmodSync(to, 0o755);
  }
}

/** Kilobytes `du` counts for `dir`. */
function du(dir: string): number {
  return Number(run("du", ["-sk", dir]).stdout.split("\t")[0]);
}

describe("image store: load, run --image, commit, save against podman", function () {
  this.timeout(240_000);
  const t = useCleanup("all");
  let pm: Podman;
  let T = "";
  let store = "";
  const cli = (args: readonly string[], timeoutMs = 120_000): Promise<CliResult> =>
    runCli(["--store", store, ...args], { timeoutMs });

  before(function () {
    this.timeout(300_000);
    const why =
      podmanSkipReason() ??
      (which("setcap") === undefined || which("getcap") === undefined
        ? "setcap/getcap are not installed (apt-get install libcap2-bin)"
        : undefined);
    if (why !== undefined) {
      console.log(`      image store test skipped: ${why}`);
      this.skip();
    }
    // Directly under /tmp: podman refuses a runroot longer than 50 characters.
    T = fs.mkdtempSync("/tmp/ufs-store-");
    const root = T;
    t.defer(`remove ${root}`, () => fs.rmSync(root, { recursive: true, force: true }));
    t.defer("remove podman's blob-info cache", removeBlobCacheUnlessItExisted());
    t.defer("remove podman containers and images", () => pm.removeAll());
    store = path.join(T, "store");
    pm = new Podman({ T, driver: "vfs" });

    const rootfs = path.join(T, "rootfs");
    busyboxRootfs(staticBusybox() as string, rootfs, {
      "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n",
      "etc/group": "root:x:0:\n",
      "etc/doomed": "to be deleted\n",
      "d/old1": "old 1\n",
      "d/sub/deep": "deep\n",
    });
    fs.writeFileSync(
      path.join(rootfs, "base.bin"),
      Buffer.alloc(BASE_DATA, 7).map((_, i) => (i * 7919) & 0xff),
    );
    for (const b of ["setcap", "getcap"]) copyWithLibraries(which(b) as string, rootfs);
    tarRootfs(rootfs, path.join(T, "base.tar"));
    pm.ok(["import", "--quiet", path.join(T, "base.tar"), BASE]);
    for (const [name, line] of [
      [APP, "RUN echo app >/app-file"],
      [OTHER, "RUN echo other >/other-file"],
    ] as const) {
      const ctx = fs.mkdtempSync(path.join(T, "ctx-"));
      fs.writeFileSync(path.join(ctx, "Containerfile"), `FROM ${BASE}\n${line}\n`);
      pm.ok(["build", "--network=none", "--pull=never", "-q", "-t", name, ctx], 180_000);
    }
    pm.ok(["save", "-o", path.join(T, "app.tar"), APP]);
    pm.ok(["save", "--format", "oci-archive", "-o", path.join(T, "other.tar"), OTHER]);
  });

  it("loads a docker-archive and an oci-archive from stdin, unpacking the shared base layer once", async function () {
    const loaded = ok(await cli(["load", "-i", path.join(T, "app.tar")]), "load app.tar");
    assert.match(loaded, new RegExp(`^Loaded image: ${APP}\nLoaded image ID: sha256:[0-9a-f]{64}\n$`));
    const afterOne = du(store);
    const r = run("bash", [
      "-c",
      `"${process.execPath}" "${CLI_PATH}" --store "${store}" load -q < "${T}/other.tar"`,
    ]);
    assert.equal(r.status, 0, show("load < other.tar", r));
    assert.match(r.stdout, new RegExp(`^Loaded image: ${OTHER}\n`));
    const afterTwo = du(store);
    console.log(
      `      store: ${afterOne} kB with ${APP}, ${afterTwo} kB with ${OTHER} too (base data ${BASE_DATA >> 10} kB)`,
    );
    assert.ok(afterOne > BASE_DATA >> 10, `the store should hold the base layer (${afterOne} kB)`);
    assert.ok(afterTwo - afterOne < BASE_DATA >> 12, `the second image added ${afterTwo - afterOne} kB`);
    // Three layers: the shared base, one of each image.
    const layerdb = path.join(store, "image", "overlay2", "layerdb", "sha256");
    assert.equal(fs.readdirSync(layerdb).length, 3);
    assert.equal(fs.readdirSync(path.join(store, "overlay2")).filter((d) => d !== "l").length, 3);

    const images = ok(await cli(["images", "--no-trunc"]), "images");
    for (const name of [APP, OTHER]) {
      const id = pm.ok(["image", "inspect", "--format", "{{.Id}}", name]).trim();
      assert.match(images, new RegExp(`^${name} +sha256:${id} `, "m"), images);
    }
  });

  it("commits a kept container's changes and saves an image podman runs with exactly that view", async function () {
    const r = await cli(["run", "--image", APP, "--name", "c1", "--keep", "--", "sh", "-c", CHANGES]);
    ok(r, "run --image --keep");
    assert.match(ok(await cli(["ps", "-a"]), "ps -a"), /^\S+ +localhost\/ufs-store\/app:1 .* Exited +c1$/m);
    const id = ok(await cli(["commit", "c1", COMMITTED]), "commit").trim();
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    const archive = path.join(T, "committed.tar");
    ok(await cli(["save", COMMITTED, "-o", archive]), "save");

    // The new layer holds the changes only: no init-layer mount points, whiteouts in .wh. form.
    const entries = await lastLayerEntries(archive, T);
    assert.deepEqual(entries, [
      "added",
      "capbin/",
      "capbin/busybox",
      "d/",
      "d/.wh..wh..opq",
      "d/f",
      "etc/",
      "etc/.wh.doomed",
    ]);

    pm.ok(["load", "-q", "-i", archive]);
    assert.equal(pm.ok(["image", "inspect", "--format", "{{.Id}}", COMMITTED]).trim(), id.slice(7));
    const before = pm.runIn([APP, "sh", "-c", VIEW]);
    const after = pm.runIn([COMMITTED, "sh", "-c", VIEW]);
    assert.equal(before.status, 0, show("podman run (app)", before));
    assert.equal(after.status, 0, show("podman run (committed)", after));
    assert.deepEqual(changedView(before.stdout), changedView(after.stdout, true));

    const getcap = pm.runIn([COMMITTED, "getcap", "/capbin/busybox"]);
    assert.match(getcap.stdout, /^\/capbin\/busybox cap_net_bind_service=ep$/m, show("getcap", getcap));
    const eff = pm.runIn([
      "--user",
      "1000",
      COMMITTED,
      "/capbin/busybox",
      "grep",
      "CapEff",
      "/proc/self/status",
    ]);
    assert.match(eff.stdout, /^CapEff:\s+0*400$/m, show("CapEff of a capability-holding process", eff));
  });

  it("removes images and only the layers nothing else uses, never one a container uses", async function () {
    const layers = (): number =>
      fs.readdirSync(path.join(store, "image", "overlay2", "layerdb", "sha256")).length;
    assert.equal(layers(), 4);
    ok(await cli(["rmi", COMMITTED]), "rmi committed");
    assert.equal(layers(), 3);
    const refused = await cli(["rmi", APP]);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /^unionfs-ts: image '.*' is used by container 'c1'/);
    assert.equal(ok(await cli(["rm", "c1"]), "rm c1"), "c1\n");
    ok(await cli(["rmi", APP]), "rmi app");
    assert.equal(layers(), 2, "the base stays: the other image uses it");
    ok(await cli(["rmi", OTHER]), "rmi other");
    assert.equal(layers(), 0);
    assert.deepEqual(fs.readdirSync(path.join(store, "overlay2")), ["l"]);
    assert.deepEqual(fs.readdirSync(path.join(store, "overlay2", "l")), []);
    assert.equal(ok(await cli(["images", "-q"]), "images"), "");
  });
});

/** Names of the entries of the last layer of an oci-archive. */
async function lastLayerEntries(archive: string, tmp: string): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(tmp, "saved-"));
  run("tar", ["-C", dir, "-xf", archive]);
  const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
  const blob = (d: string): string => path.join(dir, "blobs", "sha256", d.slice(7));
  const manifest = JSON.parse(fs.readFileSync(blob(index.manifests[0].digest), "utf8"));
  const names: string[] = [];
  await list({ file: blob(manifest.layers.at(-1).digest), onReadEntry: (e) => names.push(e.path) });
  return names.sort();
}

/**
 * A container's view (VIEW's output) with the changes CHANGES makes applied, when `committed` is false;
 * as it is, when true. Both sides then must be equal.
 */
function changedView(out: string, committed = false): { names: string[]; sums: string[] } {
  const [namesPart, sumsPart] = out.split("===\n");
  let names = (namesPart ?? "").split("\n").filter((l) => l !== "");
  let sums = (sumsPart ?? "").split("\n").filter((l) => l !== "");
  if (!committed) {
    const gone = (n: string): boolean => n === "/etc/doomed" || n.startsWith("/d/");
    names = [...names.filter((n) => !gone(n)), "/added", "/capbin", "/capbin/busybox", "/d/f"];
    const busybox = sums.find((s) => s.endsWith(" /bin/busybox"))?.split(" ")[0];
    const sum = (text: string): string =>
      run("bash", ["-c", `printf '${text}' | md5sum`]).stdout.split(" ")[0] as string;
    sums = [
      ...sums.filter((s) => !gone(s.split(/ +/)[1] as string)),
      `${sum("added\\n")}  /added`,
      `${busybox}  /capbin/busybox`,
      `${sum("new\\n")}  /d/f`,
    ];
  }
  const pathOf = (s: string): string => s.slice(s.indexOf(" ")).trim();
  return { names: names.sort(), sums: sums.sort((a, b) => (pathOf(a) < pathOf(b) ? -1 : 1)) };
}

describe("image store: containers of run --image", function () {
  this.timeout(120_000);
  const t = useCleanup("all");
  let store = "";
  const cli = (args: readonly string[]): Promise<CliResult> =>
    runCli(["--store", store, ...args], { timeoutMs: 60_000 });

  before(async function () {
    const busybox = staticBusybox();
    if (process.getuid?.() !== 0 || busybox === undefined) {
      console.log(
        "      run --image test skipped: needs root and a static busybox (apt-get install busybox-static)",
      );
      this.skip();
    }
    const tmp = t.tempDir("store-run");
    store = path.join(tmp, "store");
    const bin: Record<string, TreeSpec[string]> = {
      busybox: file(fs.readFileSync(busybox as string), 0o755),
    };
    for (const applet of ["sh", "cat", "ls", "rm", "mkdir", "grep", "echo"]) bin[applet] = symlink("busybox");
    const built = buildLayout(
      {
        format: "docker-archive",
        layers: [{ bin, etc: { base: "base\n", doomed: "x\n" } }],
        name: "localhost/bb:1",
      },
      path.join(tmp, "layout"),
      path.join(tmp, "work"),
    );
    ok(await cli(["load", "-i", built.dir]), "load");
  });

  it("stacks the store's layers without copying, and the writable layer gets only what COMMAND writes", async function () {
    const before = du(store);
    const script = "grep ' / ' /proc/self/mountinfo; echo hi >/new; rm /etc/doomed; cat /etc/base";
    const r = ok(
      await cli(["run", "--image", "bb:1", "--name", "k1", "--keep", "--", "sh", "-c", script]),
      "run",
    );
    // The union's source lists the container's layer, its init layer and the image's layer, in the store.
    const source = /fuse\.unionfs-ts (\S+)/.exec(r)?.[1] ?? "";
    const layers = source.split(":").map((b) => b.replace(/=r[ow]$/, ""));
    assert.equal(layers.length, 3, r);
    for (const l of layers)
      assert.ok(l.startsWith(path.join(store, "overlay2") + "/"), `${l} is not in the store`);
    assert.match(r, /base\n$/);
    assert.ok(du(store) - before < 200, `run grew the store by ${du(store) - before} kB: a copy?`);
    const ps = ok(await cli(["ps", "-a"]), "ps -a");
    assert.match(ps, /^\S+ +bb:1 +sh -c .* Exited +k1$/m);
    const [rw, ...lower] = layers as [string, ...string[]];
    assert.ok(lower[0]?.endsWith("-init/diff"), `the init layer is the container's own: ${lower[0]}`);
    assert.deepEqual(fs.readdirSync(path.join(lower[0] as string, "etc")).sort(), [
      "hostname",
      "hosts",
      "resolv.conf",
    ]);
    const diff = ok(await runCli(["diff", rw, "--lower", lower.join(":")]), "diff of the writable layer");
    assert.equal(
      diff,
      "C /etc\nD /etc/doomed\nA /new\n",
      "no /proc, /dev or /sys: those are in the init layer",
    );
    const again = await cli(["run", "--image", "bb:1", "--name", "k1", "--", "true"]);
    assert.equal(again.status, 2, again.stderr);
    assert.match(again.stderr, /^unionfs-ts: a container named 'k1' exists already\n$/);
    // The kept container mounts by hand from the store's overlay2 directory, as a Docker layer would.
    const mountId = path.basename(path.dirname(rw));
    const mnt = t.tempDir("store-mnt");
    t.guardMountpoint(mnt);
    ok(
      await runCli(["mount-overlay2", "-o", "ro", path.join(store, "overlay2"), mountId, mnt]),
      "mount-overlay2",
    );
    try {
      assert.equal(await fs.promises.readFile(path.join(mnt, "new"), "utf8"), "hi\n");
      await assert.rejects(fs.promises.lstat(path.join(mnt, "etc", "doomed")), { code: "ENOENT" });
      assert.equal(await fs.promises.readFile(path.join(mnt, "etc", "base"), "utf8"), "base\n");
    } finally {
      ok(await runCli(["umount", mnt]), "umount");
    }
    assert.equal(ok(await cli(["rm", "k1"]), "rm"), "k1\n");
    assert.ok(!fs.existsSync(layers[0] as string), "rm removes the writable layer");
  });

  it("answers bad input with one line and exit 2, changing nothing", async function () {
    const before = fs.readdirSync(path.join(store, "overlay2")).sort();
    const cases: Array<[string[], RegExp]> = [
      [["rmi", "nope"], /^no image 'nope' in the store/],
      [["run", "--image", "nope", "--", "true"], /^no image 'nope' in the store/],
      [["commit", "nope", "x"], /^no container 'nope' in the store/],
      [["commit", "nope", "Bad Name"], /^'Bad Name' is not a valid image name/],
      [["save", "nope", "-o", path.join(store, "..", "x.tar")], /^no image 'nope' in the store/],
      [["load", "-i", path.join(store, "..", "missing.tar")], /does not exist$/],
      [["rm", "nope"], /^no container 'nope' in the store/],
    ];
    for (const [args, pattern] of cases) {
      const r = await cli(args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]?.replace(/^unionfs-ts: /, "") ?? "", pattern);
    }
    assert.deepEqual(fs.readdirSync(path.join(store, "overlay2")).sort(), before);
    assert.ok(!fs.existsSync(path.join(store, "..", "x.tar")));
    assert.equal(ok(await cli(["ps", "-a", "-q"]), "ps"), "");
  });

  it("removes a container that was not kept when its command ends, whatever its status", async function () {
    const r = await cli(["run", "--image", "bb:1", "--", "sh", "-c", "echo x >/f; exit 3"]);
    assert.equal(r.status, 3, r.stderr);
    assert.equal(ok(await cli(["ps", "-a", "-q"]), "ps"), "");
    const overlay = fs.readdirSync(path.join(store, "overlay2")).filter((d) => d !== "l");
    assert.equal(overlay.length, 1, `only the image's layer stays: ${overlay.join(" ")}`);
    assert.deepEqual(
      readMountInfo().filter((m) => m.mountPoint.includes("unionfs-ts-r")),
      [],
      "nothing stays mounted",
    );
  });
});
