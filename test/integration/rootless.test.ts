/**
 * Rootless podman with unionfs-ts as its overlay `mount_program`, side by side with fuse-overlayfs (the
 * anchor) on the same scenario: a non-root user with subordinate ids runs podman, which runs the mount
 * program in the user namespace it makes (root there, but no CAP_SYS_ADMIN in the initial namespace: the
 * union writes user.* markers, and passthrough is refused).
 *
 * - setup (as root): a user `unionfs-ts-rootless` (made if missing, removed at the end if made here) with
 *   /etc/subuid and /etc/subgid ranges; for each mount program a store of its own under a temp dir
 *   (graphroot, runroot, tmp, HOME, XDG_RUNTIME_DIR, containers.conf), owned by the user;
 * - every podman call runs in a private mount namespace where /dev/fuse is a 0666 node (as distributions
 *   ship it; the host's stays as it is) and the checkout is bind-mounted into the temp dir (a checkout
 *   under /root is not reachable by other users), then switches to the user (setpriv);
 * - `podman import` of a busybox tarball, `podman build` of a deleted file and a replaced directory,
 *   `podman run`, `--userns=keep-id`, and non-identity maps: `--userns=auto` beside a running
 *   `--userns=auto` container (so the second gets ids other than the store's) and `--uidmap 0:1:1000
 *   --uidmap 1000:0:1`; each case's output must be the same on both mount programs;
 * - a container's upper layer: 0/0 whiteouts and `user.overlay.opaque=y` (no trusted.* xattr);
 * - teardown: every process of the user (pause processes, conmon, mount program daemons) is killed by
 *   pid, the temp dir removed; FUSE mounts live only in the user's namespaces and go with them.
 *
 * Skipped, with the reason logged, where rootless podman cannot run: not root, podman, runc, newuidmap,
 * setpriv or a static busybox missing, or node not executable by other users.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { blockedForOthers, isAlive, killAndWait, newTag, TAG_VAR, useCleanup } from "../helpers/unionfs";
import { waitFor } from "../helpers/mounts";
import {
  checkUpper,
  checkView,
  containerfile,
  imageTar,
  show,
  staticBusybox,
  which,
  upperChangesArgs,
  type Result,
} from "../helpers/podman";
import { xattrNamesUnder } from "../helpers/snapshot";

/** dist/test/integration → the checkout. */
const REPO = path.resolve(__dirname, "..", "..", "..");
const USER = "unionfs-ts-rootless";
const IMAGE = "localhost/unionfs-ts-test/rootless";

/**
 * Run as root by `unshare --mount --propagation private`: $1 the temp dir, $2 uid, $3 gid, $4 the checkout,
 * $5 $6 /dev/fuse's major and minor; the rest is the command to run as the user.
 */
const AS_USER = String.raw`
set -e
T=$1 uid=$2 gid=$3 repo=$4 major=$5 minor=$6
shift 6
mount -t tmpfs -o mode=0755,size=16k tmpfs "$T/dev"
mknod -m 0666 "$T/dev/fuse" c "$major" "$minor"
mount --bind "$T/dev/fuse" /dev/fuse
mount --bind "$repo" "$T/repo"
mount --make-rshared /
cd "$T" # the user may not reach the caller's directory (a checkout under a 0700 dir)
exec setpriv --reuid="$uid" --regid="$gid" --init-groups -- "$@"
`;

interface Account {
  uid: number;
  gid: number;
  made: boolean;
}

function passwdEntry(name: string): { uid: number; gid: number } | undefined {
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  const f = line?.split(":");
  return f === undefined ? undefined : { uid: Number(f[2]), gid: Number(f[3]) };
}

/** The first id after every range in /etc/subuid or /etc/subgid, and whether `name` has one. */
function subIds(file: string, name: string): { next: number; has: boolean } {
  let next = 100_000;
  let has = false;
  const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  for (const l of text.split("\n")) {
    const [who, start, count] = l.split(":");
    if (start === undefined || count === undefined) continue;
    if (who === name) has = true;
    next = Math.max(next, Number(start) + Number(count));
  }
  return { next, has };
}

function must(cmd: string, args: readonly string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  assert.equal(r.status, 0, show(`${cmd} ${args.join(" ")}`, { ...r, stdout: r.stdout ?? "" }));
}

/** The test user, made if missing, with 65536 subordinate uids and gids. */
function account(): Account {
  let pw = passwdEntry(USER);
  const made = pw === undefined;
  if (made) {
    must("useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", USER]);
    pw = passwdEntry(USER);
  }
  assert.ok(pw, `useradd ${USER} made no passwd entry`);
  for (const [file, flag] of [
    ["/etc/subuid", "--add-subuids"],
    ["/etc/subgid", "--add-subgids"],
  ] as const) {
    const { next, has } = subIds(file, USER);
    if (!has) must("usermod", [flag, `${next}-${next + 65535}`, USER]);
  }
  return { ...pw, made };
}

/** Pids of every live process whose real uid is `uid`. */
function processesOf(uid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${name}/status`, "latin1"));
      if (m !== null && Number(m[1]) === uid && isAlive(Number(name))) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

interface Store {
  /** "unionfs-ts" or "fuse-overlayfs". */
  name: string;
  /** The mount's type in /proc/mounts. */
  fsType: string;
  podman(args: readonly string[], timeoutMs?: number): Result;
}

describe("rootless podman: unionfs-ts and fuse-overlayfs as mount_program", function () {
  this.timeout(300_000);
  const t = useCleanup("all");
  const tag = newTag();
  const stores: Store[] = [];
  let T = "";

  function skipUnless(ctx: Mocha.Context): void {
    const missing = ["podman", "runc", "newuidmap", "newgidmap", "setpriv", "unshare", "useradd"].find(
      (c) => which(c) === undefined,
    );
    const why =
      process.getuid?.() !== 0
        ? "not root (it makes a user and runs podman as that user)"
        : missing !== undefined
          ? `${missing} is not installed (apt-get install podman runc uidmap; bash scripts/setup.sh)`
          : staticBusybox() === undefined
            ? "no static busybox for the image (apt-get install busybox-static)"
            : blockedForOthers(path.dirname(process.execPath)) !== undefined
              ? `node (${process.execPath}) cannot be run by other users`
              : undefined;
    if (why !== undefined) {
      console.log(`      rootless podman test skipped: ${why}`);
      ctx.skip();
    }
  }

  function makeStore(name: string, program: string, fsType: string, acct: Account): Store {
    const S = path.join(T, name);
    for (const d of ["home", "xdg", "graph", "run", "tmp"])
      fs.mkdirSync(path.join(S, d), { recursive: true });
    fs.chmodSync(path.join(S, "xdg"), 0o700);
    fs.writeFileSync(
      path.join(S, "containers.conf"),
      `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n` +
        `tmp_dir = "${S}/tmp"\n`,
    );
    const fuse = fs.statSync("/dev/fuse").rdev;
    const major = (fuse >> 8) & 0xfff;
    const minor = (fuse & 0xff) | ((fuse >> 12) & 0xfff00);
    const env = {
      PATH: "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
      LANG: "C.UTF-8",
      HOME: path.join(S, "home"),
      XDG_RUNTIME_DIR: path.join(S, "xdg"),
      XDG_CONFIG_HOME: path.join(S, "home", ".config"),
      XDG_DATA_HOME: path.join(S, "home", ".local", "share"),
      TMPDIR: path.join(S, "tmp"),
      CONTAINERS_CONF: path.join(S, "containers.conf"),
      // Mount program daemons inherit it: the teardown also finds them by it.
      [TAG_VAR]: tag,
    };
    const flags = [
      ...["--root", path.join(S, "graph"), "--runroot", path.join(S, "run"), "--tmpdir", path.join(S, "tmp")],
      ...["--storage-driver", "overlay", "--storage-opt", `overlay.mount_program=${program}`],
      ...["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"],
    ];
    const podmanBin = which("podman") as string;
    return {
      name,
      fsType,
      podman(args, timeoutMs = 90_000) {
        const r = spawnSync(
          "unshare",
          [
            ...["--mount", "--propagation", "private", "--", "sh", "-c", AS_USER, "sh"],
            ...[T, String(acct.uid), String(acct.gid), REPO, String(major), String(minor)],
            ...[podmanBin, ...flags, ...args],
          ],
          {
            encoding: "utf8",
            timeout: timeoutMs,
            killSignal: "SIGKILL",
            env,
            stdio: ["ignore", "pipe", "pipe"],
          },
        );
        return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
      },
    };
  }

  function ok(s: Store, args: readonly string[], timeoutMs?: number): string {
    const r = s.podman(args, timeoutMs);
    assert.equal(r.status, 0, show(`${s.name}: podman ${args.join(" ")}`, r));
    return r.stdout;
  }

  /** `podman run --rm … IMAGE sh -c SCRIPT` on every store: the outputs, which must succeed. */
  function runEverywhere(opts: readonly string[], script: string, image = `${IMAGE}:built`): string[] {
    return stores.map((s) =>
      ok(s, ["run", "--rm", "--network=none", "--pull=never", ...opts, image, "sh", "-c", script]),
    );
  }

  before(function () {
    skipUnless(this);
    const acct = account();
    T = fs.mkdtempSync("/tmp/ufs-rootless-");
    const root = T;
    // Teardown, last registered first: the user's processes, then the temp dir, then the user.
    if (acct.made) t.defer(`userdel ${USER}`, () => must("userdel", [USER]));
    t.defer(`remove ${root}`, () => fs.rmSync(root, { recursive: true, force: true }));
    t.defer(`kill the processes of ${USER}`, async () => {
      await killAndWait(processesOf(acct.uid));
      await waitFor(() => processesOf(acct.uid).length === 0, 10_000, `the processes of ${USER} to go`);
    });
    for (const d of ["dev", "repo", "bin", "ctx"]) fs.mkdirSync(path.join(T, d));
    const wrapper = path.join(T, "bin", "unionfs-ts");
    const cli = path.join(T, "repo", "dist", "src", "cli", "main.js");
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec '${process.execPath}' '${cli}' "$@"\n`, { mode: 0o755 });
    const tar = path.join(T, "image.tar");
    imageTar(staticBusybox() as string, path.join(T, "image"), tar);
    fs.writeFileSync(path.join(T, "ctx", "Containerfile"), containerfile(`${IMAGE}:base`));
    stores.push(makeStore("unionfs-ts", wrapper, "fuse.unionfs-ts", acct));
    const fo = which("fuse-overlayfs");
    if (fo === undefined) console.log("      fuse-overlayfs is not installed: unionfs-ts runs alone");
    else stores.push(makeStore("fuse-overlayfs", fo, "fuse.fuse-overlayfs", acct));
    must("chown", ["-R", `${acct.uid}:${acct.gid}`, T]);
    for (const s of stores) {
      const opts = ok(s, ["info", "--format", "{{json .Store.GraphOptions}}"]);
      assert.match(opts, /mount_program/, `${s.name}: podman does not use a mount program: ${opts}`);
      ok(s, ["import", "--quiet", tar, `${IMAGE}:base`]);
    }
  });

  it("imports a tarball and runs a container whose root is the mount program's, as the user", function () {
    const outs = runEverywhere([], "id -u; grep ' / ' /proc/mounts | cut -d' ' -f3; ls /d", `${IMAGE}:base`);
    stores.forEach((s, i) => assert.equal(outs[i], `0\n${s.fsType}\nold1\nold2\nsub\n`, s.name));
  });

  it("builds a deleted file and a replaced directory; a container of the image sees exactly them", function () {
    for (const s of stores) {
      ok(
        s,
        ["build", "--network=none", "--pull=never", "--layers", "-t", `${IMAGE}:built`, path.join(T, "ctx")],
        180_000,
      );
    }
    const outs = stores.map((s) =>
      ok(s, [
        "run",
        "--rm",
        "--network=none",
        "--pull=never",
        `${IMAGE}:built`,
        "sh",
        "-c",
        checkView(s.fsType),
      ]),
    );
    for (const o of outs) assert.doesNotMatch(o, /FAIL/);
    assert.equal(new Set(outs.map((o) => o.replace(/fuse\.[a-z-]+/g, "FS"))).size, 1, outs.join("\n---\n"));
  });

  it("--userns=keep-id: the container runs as the user, the image's files stay root's", function () {
    const script =
      "id -u; stat -c '%u %g %a' /etc/passwd; echo mine >/tmp/f && stat -c %u /tmp/f && cat /tmp/f";
    const outs = runEverywhere(["--userns=keep-id"], script);
    const uid = passwdEntry(USER)?.uid;
    for (const o of outs) assert.equal(o, `${uid}\n0 0 644\n${uid}\nmine\n`);
  });

  it("maps ids other than the store's: --userns=auto beside a running container, and --uidmap 0:1:1000 --uidmap 1000:0:1", function () {
    const script = [
      "tr -s ' ' </proc/self/uid_map | tr '\\n' ';'; echo",
      "stat -c '%u %g' /etc/passwd /bin/busybox",
      "echo x >>/etc/base-file && cat /etc/base-file",
      "rm /etc/group && rm -rf /d && mkdir /d && echo n >/d/n && ls -A /d && ls /etc",
      "chown 1000:1000 /d/n && stat -c '%u %g' /d/n",
    ].join("; ");
    const keeper = stores.map((s) =>
      ok(s, [
        "run",
        "-d",
        "--userns=auto",
        "--network=none",
        "--pull=never",
        `${IMAGE}:built`,
        "sleep",
        "600",
      ]).trim(),
    );
    try {
      const auto = runEverywhere(["--userns=auto"], script);
      const custom = runEverywhere(
        ["--uidmap", "0:1:1000", "--uidmap", "1000:0:1", "--gidmap", "0:1:1000", "--gidmap", "1000:0:1"],
        script,
      );
      // The image's root-owned files show as root, writes and whiteouts work, and container uid 1000
      // (the user's own id on disk under the custom map) can own a file.
      const rest = "0 0\n0 0\nbase\nx\nn\nbase-file\nhostname\nhosts\nmtab\npasswd\n1000 1000\n";
      for (const [outs, map] of [
        // The running container holds the first range (from 1): this one's starts elsewhere.
        [auto, /^ 0 (?!1 )\d+ \d+;\n/],
        [custom, /^ 0 1 1000; 1000 0 1;\n/],
      ] as const) {
        for (const o of outs) {
          assert.match(o, map);
          assert.equal(o.slice(o.indexOf("\n") + 1), rest);
        }
      }
    } finally {
      stores.forEach((s, i) => s.podman(["rm", "--force", "--time", "0", keeper[i] as string]));
    }
  });

  it("writes 0/0 whiteouts and user.overlay.opaque in a container's upper layer, no trusted.* xattr", function () {
    const s = stores[0] as Store;
    const name = `upper-${tag}`;
    ok(s, upperChangesArgs(name, `${IMAGE}:built`));
    try {
      const upper = ok(s, ["inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", name]).trim();
      checkUpper(upper, "user.overlay.opaque");
      assert.deepEqual(xattrNamesUnder(upper, "trusted."), []);
    } finally {
      ok(s, ["rm", name]);
    }
  });

  it("leaves no container and no mount program daemon running", async function () {
    for (const s of stores) {
      ok(s, ["rm", "--all", "--force", "--time", "0"]);
      ok(s, ["rmi", "--all", "--force"]);
    }
    const cmdline = (p: number): string => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "latin1");
      } catch {
        return "";
      }
    };
    const daemons = (): number[] =>
      processesOf(passwdEntry(USER)?.uid ?? -1).filter((p) => /unionfs-ts|fuse-overlayfs/.test(cmdline(p)));
    await waitFor(() => daemons().length === 0, 10_000, "the mount programs to exit");
  });
});
