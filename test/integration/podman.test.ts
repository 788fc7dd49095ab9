/**
 * A real container engine on unionfs-ts: rootful podman whose overlay storage uses unionfs-ts as its
 * `mount_program` (the fuse-overlayfs contract), in a private store under a temp dir. The same scenario
 * as examples/podman/run.sh, without the narration:
 *
 * - `podman import` of a busybox root filesystem tarball (built here from Debian's busybox-static);
 * - `podman build` of two RUN layers: added files plus a deleted base file (a whiteout), and a replaced
 *   directory (`rm -rf /d && mkdir /d`: an opaque directory); a container of the result sees exactly that;
 * - a file written by one `podman run --rm` is not seen by the next; a container's upper layer holds
 *   overlay-format whiteouts (char 0/0) and `trusted.overlay.opaque=y`;
 * - what podman passed to the mount program (logged by the scripts/install-bin.sh wrapper): every mount
 *   is `-o lowerdir=…[,upperdir=…,workdir=…][,,volatile] …/merged`, run from the store's overlay dir;
 *   the same mount with the store's cwd-relative `l/…` links (the form containers/storage uses when the
 *   absolute one would not fit in a page) works too;
 * - afterwards no fuse.unionfs-ts mount and no daemon of this test is left.
 *
 * Skipped, with the reason logged, when podman (or runc, or busybox-static) is not installed or we are
 * not root. Podman runs with runc, cgroupfs, the file events backend, --network=none, ulimits within our
 * own hard limits and a private containers.conf/storage.conf; nothing comes from the network.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { forceUnmount, mountsUnder, run, waitFor } from "../helpers/mounts";
import {
  checkUpper,
  checkView,
  containerfile,
  imageTar,
  Podman,
  podmanSkipReason,
  removeBlobCacheUnlessItExisted,
  show,
  staticBusybox,
  upperChangesArgs,
  type Result,
} from "../helpers/podman";
import {
  daemonPidsFor,
  EXIT_DEADLINE_MS,
  killAndWait,
  newTag,
  TAG_VAR,
  useCleanup,
} from "../helpers/unionfs";

/** dist/test/integration → the checkout (for scripts/install-bin.sh, which wraps dist/src/cli/main.js). */
const REPO = path.resolve(__dirname, "..", "..", "..");
const IMAGE = "localhost/unionfs-ts-test/busybox";

/** fuse.unionfs-ts lines of /proc/mounts whose mountpoint is at or below `dir`. */
function unionfsMountsUnder(dir: string): string[] {
  return fs
    .readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .filter((l) => {
      const [, mnt, type] = l.split(" ");
      return type === "fuse.unionfs-ts" && mnt !== undefined && (mnt === dir || mnt.startsWith(`${dir}/`));
    });
}

describe("podman with unionfs-ts as its overlay mount_program", function () {
  this.timeout(150_000);
  const t = useCleanup("all");
  const tag = newTag();
  let pm: Podman;
  let T = ""; // the temp dir holding everything
  let G = ""; // graphroot
  let built = false;

  function podmanOk(args: readonly string[], timeoutMs?: number): string {
    return pm.ok(args, timeoutMs);
  }

  function runIn(args: readonly string[]): Result {
    return pm.runIn(args);
  }

  before(function () {
    const why = podmanSkipReason();
    if (why !== undefined) {
      console.log(`      podman test skipped: ${why}`);
      this.skip();
    }
    const busybox = staticBusybox() as string;

    // Directly under /tmp, not under the test run's TMPDIR: podman refuses a runroot longer than 50
    // characters.
    T = fs.mkdtempSync("/tmp/ufs-podman-");
    const root = T;
    t.defer(`remove ${root}`, () => fs.rmSync(root, { recursive: true, force: true }));
    G = path.join(T, "graph");
    fs.mkdirSync(path.join(T, "ctx"));

    // Cleanup, run last registered first: podman's containers and images (it unmounts their layers),
    // then anything still mounted under T, then daemons of this test, then the blob-info cache that
    // `podman import` writes to /var/lib/containers/cache whatever --root says, if it was not there before.
    t.defer("remove podman's blob-info cache", removeBlobCacheUnlessItExisted());
    t.defer("kill daemons left by podman", () => killAndWait(daemonPidsFor(tag)));
    t.defer(`unmount everything under ${T}`, () => {
      const mnts = mountsUnder(T)
        .map((m) => m.mountPoint)
        .sort()
        .reverse();
      for (const m of new Set(mnts)) forceUnmount(m);
    });
    t.defer("remove podman containers and images", () => pm.removeAll());

    const wrapper = path.join(T, "bin", "unionfs-ts");
    const inst = run("bash", [path.join(REPO, "scripts", "install-bin.sh"), wrapper]);
    assert.equal(inst.status, 0, show("scripts/install-bin.sh", inst));
    pm = new Podman({
      T,
      driver: "overlay",
      mountProgram: wrapper,
      // Daemons started through podman inherit the tag: they can be found (and scripts/test.sh finds them).
      env: { UNIONFS_TS_MOUNT_LOG: path.join(T, "mount.log"), [TAG_VAR]: tag },
    });
    const graphOptions = podmanOk(["info", "--format", "{{json .Store.GraphOptions}}"]);
    assert.ok(graphOptions.includes(wrapper), `podman does not use ${wrapper}: ${graphOptions}`);

    const tar = path.join(T, "busybox.tar");
    imageTar(busybox, T, tar);
    podmanOk(["import", "--quiet", tar, `${IMAGE}:base`]);
  });

  it("runs a container whose root is a unionfs-ts mount", function () {
    const r = runIn([`${IMAGE}:base`, "head", "-n1", "/proc/mounts"]);
    assert.equal(r.status, 0, show("podman run", r));
    assert.match(r.stdout, /^\S+ \/ fuse\.unionfs-ts /, `the container's root: ${r.stdout}`);
  });

  it("builds RUN layers (whiteout, opaque dir) and a container of the result sees exactly them", function () {
    fs.writeFileSync(path.join(T, "ctx", "Containerfile"), containerfile(`${IMAGE}:base`));
    podmanOk(
      ["build", "--network=none", "--pull=never", "--layers", "-t", `${IMAGE}:built`, path.join(T, "ctx")],
      120_000,
    );
    built = true;
    const layers = podmanOk(["image", "inspect", "--format", "{{len .RootFS.Layers}}", `${IMAGE}:built`]);
    assert.equal(layers.trim(), "3", "base + 2 RUN layers");
    const r = runIn([`${IMAGE}:built`, "sh", "-c", checkView("fuse.unionfs-ts")]);
    assert.equal(r.status, 0, show("the view check in the container", r));
    assert.doesNotMatch(r.stdout, /FAIL/);
  });

  it("does not show a file written by one container to the next one", function () {
    assert.ok(built, "needs the image built by the previous test");
    const first = runIn([`${IMAGE}:built`, "sh", "-c", "echo secret >/written && cat /written"]);
    assert.equal(first.status, 0, show("first run", first));
    assert.equal(first.stdout, "secret\n");
    const second = runIn([`${IMAGE}:built`, "sh", "-c", "test -e /written && echo PRESENT || echo absent"]);
    assert.equal(second.status, 0, show("second run", second));
    assert.equal(second.stdout, "absent\n");
  });

  it("writes overlay-format whiteouts and opaque dirs in a container's upper layer", function () {
    assert.ok(built, "needs the image built by an earlier test");
    podmanOk(upperChangesArgs(`upper-${tag}`, `${IMAGE}:built`));
    const upper = podmanOk(["inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", `upper-${tag}`]).trim();
    checkUpper(upper, "trusted.overlay.opaque");
    podmanOk(["rm", `upper-${tag}`]);
  });

  it("is called as -o lowerdir=…,upperdir=…,workdir=… …/merged from the store's overlay dir", function () {
    // The wrapper logs blocks: "call pid=N", "  cwd: DIR", "  argv[I]: ARG"…, "  exit: N".
    const calls = fs
      .readFileSync(path.join(T, "mount.log"), "utf8")
      .split(/^call /m)
      .filter((b) => b !== "")
      .map((b) => ({
        cwd: /^ {2}cwd: (.*)$/m.exec(b)?.[1],
        argv: [...b.matchAll(/^ {2}argv\[\d+\]: (.*)$/gm)].map((m) => m[1] as string),
        exit: /^ {2}exit: (.*)$/m.exec(b)?.[1],
      }));
    const mounts = calls.filter((c) => c.argv[0] === "-o");
    // run base, 4 for the build (2 containers + 2 parent layers, read-only, for the diff), 2 runs, upper-check
    assert.ok(mounts.length >= 5, `only ${mounts.length} mount calls logged: ${JSON.stringify(calls)}`);
    const home = path.join(G, "overlay");
    for (const c of mounts) {
      const what = JSON.stringify(c);
      assert.equal(c.cwd, home, what);
      assert.equal(c.argv.length, 3, what);
      assert.equal(c.exit, "0", what);
      assert.match(c.argv[2] as string, /^\/.*\/merged$/, what);
      const items = (c.argv[1] as string).split(",");
      const lower = items.find((i) => i.startsWith("lowerdir="));
      assert.ok(lower, what);
      for (const l of lower.slice("lowerdir=".length).split(":")) assert.ok(l.startsWith(`${home}/`), what);
      const upper = items.find((i) => i.startsWith("upperdir="));
      if (upper !== undefined)
        assert.ok(
          items.some((i) => i.startsWith("workdir=")),
          what,
        );
    }
    assert.ok(
      mounts.some((c) => (c.argv[1] as string).includes(",upperdir=")),
      "some mount should be writable",
    );
    assert.ok(
      mounts.some((c) => !(c.argv[1] as string).includes("upperdir=")),
      "the build should mount parent layers read-only (lowerdir only)",
    );
  });

  it("mounts the store's layers through cwd-relative l/… links (containers/storage's short form)", async function () {
    assert.ok(built, "needs the image built by an earlier test");
    const home = path.join(G, "overlay");
    const diff = podmanOk([
      "image",
      "inspect",
      "--format",
      "{{.GraphDriver.Data.UpperDir}}",
      `${IMAGE}:built`,
    ]);
    const layer = path.dirname(diff.trim());
    const lowers = `l/${fs.readFileSync(path.join(layer, "link"), "utf8").trim()}:${fs.readFileSync(path.join(layer, "lower"), "utf8").trim()}`;
    assert.match(lowers, /^l\/[A-Z0-9]+(:l\/[A-Z0-9]+){2}$/);
    const scratch = path.join(home, `unionfs-ts-replay-${tag}`);
    fs.mkdirSync(path.join(scratch, "diff"), { recursive: true });
    fs.mkdirSync(path.join(scratch, "work"));
    t.defer(`remove ${scratch}`, () => fs.rmSync(scratch, { recursive: true, force: true }));
    const mnt = path.join(T, "replay");
    fs.mkdirSync(mnt);
    t.guardMountpoint(mnt, tag);
    const rel = path.basename(scratch);
    const r = spawnSync(
      path.join(T, "bin", "unionfs-ts"),
      ["-o", `lowerdir=${lowers},upperdir=${rel}/diff,workdir=${rel}/work,,volatile`, mnt],
      { cwd: home, encoding: "utf8", timeout: 30_000, env: { ...process.env, [TAG_VAR]: tag } },
    );
    assert.equal(r.status, 0, show("mount with relative paths", { ...r, stdout: r.stdout ?? "" }));
    assert.equal(unionfsMountsUnder(mnt).length, 1, "the relative-path mount should be live");
    const fsp = fs.promises;
    await assert.rejects(fsp.lstat(path.join(mnt, "etc", "doomed")), { code: "ENOENT" });
    assert.deepEqual(await fsp.readdir(path.join(mnt, "d")), ["f"]);
    assert.equal(await fsp.readFile(path.join(mnt, "added2"), "utf8"), "two\n");
    await fsp.unlink(path.join(mnt, "added1"));
    await fsp.writeFile(path.join(mnt, "new"), "replay\n");
    const wh = fs.lstatSync(path.join(scratch, "diff", "added1"));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, "deleting added1 should leave a 0/0 whiteout");
    assert.equal(fs.readFileSync(path.join(scratch, "diff", "new"), "utf8"), "replay\n");
    const u = run("umount", [mnt]);
    assert.equal(u.status, 0, show("umount", u));
  });

  it("leaves no unionfs-ts mount and no daemon behind", async function () {
    podmanOk(["rm", "--all", "--force", "--time", "0"]);
    podmanOk(["rmi", "--all", "--force"]);
    assert.deepEqual(unionfsMountsUnder(T), [], "fuse.unionfs-ts mounts left in /proc/mounts");
    await waitFor(() => daemonPidsFor(tag).length === 0, EXIT_DEADLINE_MS, "the unionfs-ts daemons to exit");
  });
});
