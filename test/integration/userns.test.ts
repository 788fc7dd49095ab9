/**
 * The union served from a user namespace, as rootless podman runs its mount program: `unshare --user
 * --map-root-user --mount` gives the daemon root in a namespace of its own, where FUSE mounts are allowed
 * but trusted.* xattrs (CAP_SYS_ADMIN in the initial namespace) and FUSE passthrough are not. One
 * scenario runs there on kernel overlayfs with `userxattr` (rootless overlay, the reference) and on the
 * union in both CLI forms: copy-up, a directory replaced (opaque), a lower directory renamed, a caller's
 * user.* xattr, exec, then a remount.
 *
 * Checked: every view (contents, listings, xattrs) is overlayfs's; the union keeps every inode number
 * through copy-up, rename of a lower directory and the remount (overlayfs renames a lower directory
 * with EXDEV, so `mv` copies it, and here it loses copy-up numbers on a remount); the union's upper
 * branch holds `user.overlay.opaque` / `user.unionfs.origin` markers and no trusted.* xattr.
 *
 * Runs as root (the namespace maps root to itself, so the test's temp files are usable there); skipped
 * where unshare cannot make a user namespace or overlayfs refuses `userxattr`.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { boundedChild } from "../helpers/faults";
import { makeTree, removeTree } from "../helpers/tmp";
import { tryLgetxattr } from "../../src/sys/libc";
import { xattrNamesUnder } from "../helpers/snapshot";
import { CLI_PATH, daemonPidsFor, killAndWait, newTag, TAG_VAR, useCleanup } from "../helpers/unionfs";

/** $1 kind (overlay | branches | lowerdir), $2 the dir holding lower/ upper/ work/ mnt/, $3 node, $4 the CLI. */
const SCENARIO = String.raw`
kind=$1 B=$2 node=$3 cli=$4
mountit() {
  case $kind in
    overlay) mount -t overlay overlay -o "userxattr,lowerdir=$B/lower,upperdir=$B/upper,workdir=$B/work" "$B/mnt" ;;
    branches) "$node" "$cli" mount "$B/upper=rw:$B/lower" "$B/mnt" ;;
    lowerdir) "$node" "$cli" -o "lowerdir=$B/lower,upperdir=$B/upper,workdir=$B/work" "$B/mnt" ;;
  esac || { echo "mount: failed"; exit 1; }
}
remount() { cd / && umount "$B/mnt" && mountit && cd "$B/mnt"; }
say() { printf '%s: %s\n' "$1" "$2"; }
ino() { say "ino $1" "$(stat -c %i "$1" 2>&1)"; }
mountit
cd "$B/mnt" || exit 1
ino file; ino dir; ino ren; ino ren/in/f
echo more >>file
say "file" "$(cat file | tr '\n' ' ')"
ino file
chmod 0750 dir
ino dir
rm -rf dir/sub && mkdir dir/sub && echo new >dir/sub/new
say "ls dir/sub" "$(ls -A dir/sub | tr '\n' ' ')"
mv ren ren2
say "ls ren2" "$(ls -AR ren2 | tr '\n' ' ')"
ino ren2; ino ren2/in/f
setfattr -n user.mine -v yes file && say "user.mine" "$(getfattr --only-values -n user.mine file)"
say "exec" "$(./run.sh 2>&1)"
remount || { echo "remount: failed"; exit 1; }
say "after remount" "-"
say "file" "$(cat file | tr '\n' ' ')"
ino file; ino dir; ino ren2; ino ren2/in/f
say "ls dir/sub" "$(ls -A dir/sub | tr '\n' ' ')"
say "ls ren2" "$(ls -AR ren2 | tr '\n' ' ')"
say "user.mine" "$(getfattr --only-values -n user.mine file 2>&1)"
cd / && umount "$B/mnt" && say "unmounted" yes
`;

type Lines = string[];

/** The value of the first line `key: …` at or after index `from`. */
function value(lines: Lines, key: string, from = 0): string | undefined {
  const i = lines.findIndex((l, n) => n >= from && l.startsWith(`${key}: `));
  return i < 0 ? undefined : (lines[i] as string).slice(key.length + 2);
}

function tree(): string {
  return makeTree(
    {
      lower: {
        file: "base\n",
        dir: { x: "x\n", sub: { y: "y\n" } },
        ren: { in: { f: "f\n" } },
        "run.sh": "#!/bin/sh\necho ran\n",
      },
      upper: {},
      work: {},
      mnt: {},
    },
    "userns",
  );
}

describe("the union in a user namespace (rootless), against overlayfs userxattr", function () {
  this.timeout(120_000);
  const t = useCleanup("all");
  const results = new Map<string, { dir: string; lines: Lines }>();
  const tag = newTag();

  before(async function () {
    if (process.getuid?.() !== 0) {
      console.log("      userns test skipped: not root");
      this.skip();
    }
    t.defer("kill daemons left in the namespace", () => killAndWait(daemonPidsFor(tag)));
    for (const kind of ["overlay", "branches", "lowerdir"]) {
      const dir = tree();
      t.defer(`remove ${dir}`, () => removeTree(dir));
      fs.chmodSync(path.join(dir, "lower", "run.sh"), 0o755);
      const r = await boundedChild(
        "unshare",
        [
          "--user",
          "--map-root-user",
          "--mount",
          "--propagation",
          "private",
          "--",
          "bash",
          "-c",
          SCENARIO,
          "sh",
        ].concat([kind, dir, process.execPath, CLI_PATH]),
        { timeoutMs: 60_000, env: { ...process.env, [TAG_VAR]: tag } },
      );
      const lines = r.stdout.split("\n").filter((l) => l !== "");
      if (kind === "overlay" && value(lines, "mount") === "failed") {
        console.log(
          `      userns test skipped: overlayfs in a user namespace refused userxattr: ${r.stderr}`,
        );
        this.skip();
      }
      assert.equal(r.status, 0, `${kind}: exit ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
      assert.equal(value(lines, "unmounted"), "yes", `${kind}: ${r.stdout}\n${r.stderr}`);
      results.set(kind, { dir, lines });
    }
  });

  for (const kind of ["branches", "lowerdir"]) {
    describe(`unionfs-ts (${kind === "branches" ? "branch list" : "-o lowerdir="})`, function () {
      const get = (k: string): { dir: string; lines: Lines } =>
        results.get(k) as { dir: string; lines: Lines };

      it("shows what overlayfs shows, before and after a remount", function () {
        const ours = get(kind).lines.filter((l) => !l.startsWith("ino "));
        const theirs = get("overlay").lines.filter((l) => !l.startsWith("ino "));
        assert.deepEqual(ours, theirs);
        assert.equal(value(ours, "exec"), "ran");
        assert.equal(value(ours, "ls dir/sub"), "new ");
      });

      it("keeps inode numbers through copy-up, a renamed lower directory and a remount", function () {
        const l = get(kind).lines;
        const after = l.indexOf("after remount: -");
        for (const [key, was] of [
          ["ino file", "ino file"],
          ["ino dir", "ino dir"],
          ["ino ren2", "ino ren"],
          ["ino ren2/in/f", "ino ren/in/f"],
        ] as const) {
          const first = value(l, was);
          assert.match(first ?? "", /^\d+$/, `${was}: ${first}`);
          assert.equal(value(l, key, l.indexOf(`${was}: ${first}`) + 1), first, `${key} while mounted`);
          assert.equal(value(l, key, after), first, `${key} after the remount`);
        }
        const o = get("overlay").lines;
        assert.equal(value(o, "ino file", 1), value(o, "ino file"), "overlayfs keeps it while mounted too");
      });

      it("marks its upper branch with user.* xattrs, as rootless overlayfs does, and sets no trusted.* one", function () {
        const upper = path.join(get(kind).dir, "upper");
        const sub = path.join(upper, "dir", "sub");
        if (kind === "lowerdir") {
          assert.equal(tryLgetxattr(sub, "user.overlay.opaque")?.toString(), "y");
          const o = path.join(get("overlay").dir, "upper", "dir", "sub");
          assert.equal(tryLgetxattr(o, "user.overlay.opaque")?.toString(), "y", "overlayfs's marker");
        } else {
          assert.ok(fs.existsSync(path.join(sub, ".wh..wh..opq")), "aufs opaque marker");
        }
        const l = get(kind).lines;
        const origin = tryLgetxattr(path.join(upper, "file"), "user.unionfs.origin")?.readBigUInt64LE();
        assert.equal(String(origin), value(l, "ino file"));
        assert.deepEqual(xattrNamesUnder(upper, "trusted."), []);
      });
    });
  }
});
