#!/usr/bin/env bash
# Prepares this machine to build, test and demo unionfs-ts. Idempotent; a second run is fast.
#
#   1. checks we are root and that the kernel has fuse and overlay (nothing is modprobed);
#   2. installs the Debian packages the tests and the demo use, only those missing;
#   3. runs `npm ci` when node_modules is missing or package-lock.json changed since the last run
#      (remembered in .setup-stamp, which git ignores);
#   4. compiles TypeScript into dist/ (`npx tsc -p .`), first dropping compiled files whose source is gone.
#
# Nothing outside the checkout is written but Debian packages: the mount(8) helper in /sbin is an explicit
# step, `npx unionfs-ts install-helper` (it only says so when none is installed).
#
# Works without a terminal (CI=true, no stdin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }
die() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs Debian packages, and the tests mount filesystems); try: sudo bash scripts/setup.sh"

# --- kernel --------------------------------------------------------------------------------------
for fs in fuse overlay; do
  grep -qE "[[:space:]]${fs}\$" /proc/filesystems || die "the kernel does not offer the '${fs}' filesystem (see /proc/filesystems); this script loads no modules"
done
[ -c /dev/fuse ] || die "/dev/fuse is missing"

# --- Debian packages -----------------------------------------------------------------------------
# fuse3: fusermount3 (the tests unmount with it); attr: getfattr/setfattr; acl: setfacl/getfacl (the
# POSIX ACL cases); tree: the demo's listing;
# util-linux: mount, umount, mountpoint, findmnt, losetup, unshare; coreutils: timeout, sha256sum; procps: ps;
# e2fsprogs: mkfs.ext4 (faults.test.ts puts an upper branch on an ext4 loop device);
# podman, runc: podman.test.ts runs containers with unionfs-ts as podman's mount_program (installed
# without recommends: crun, slirp4netns… are not used);
# uidmap (newuidmap, newgidmap), fuse-overlayfs: rootless.test.ts runs rootless podman as a test user
# with unionfs-ts, and with fuse-overlayfs beside it, as its mount_program.
packages=(fuse3 attr acl tree util-linux coreutils procps busybox-static libfuse2 e2fsprogs podman runc uidmap fuse-overlayfs)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [ "${status:0:2}" = "ii" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi
for cmd in fusermount3 getfattr setfattr setfacl getfacl tree mount umount mountpoint timeout sha256sum mkfs.ext4 losetup; do
  command -v "$cmd" >/dev/null || die "'$cmd' is still missing after installing packages"
done

# --- npm dependencies ----------------------------------------------------------------------------
stamp=.setup-stamp
want="$(sha256sum package-lock.json | cut -d' ' -f1) node=$(node --version)"
have=$(cat "$stamp" 2>/dev/null || true)
if [ ! -d node_modules ] || [ "$want" != "$have" ]; then
  say "npm ci (node_modules missing or package-lock.json changed)"
  rm -f "$stamp"
  npm ci --no-audit --no-fund </dev/null || die "npm ci failed"
  printf '%s\n' "$want" >"$stamp"
fi

# --- build ---------------------------------------------------------------------------------------
# tsc never deletes outputs, so a renamed or deleted test would keep running from dist/: drop any
# compiled file whose .ts source no longer exists.
if [ -d dist ]; then
  while IFS= read -r -d '' out; do
    rel=${out#dist/}
    base=${rel%.js.map}
    base=${base%.d.ts}
    base=${base%.js}
    [ -f "$base.ts" ] || rm -f "$out"
  done < <(find dist -type f \( -name '*.js' -o -name '*.js.map' -o -name '*.d.ts' \) -print0)
fi
say "compiling TypeScript (npx tsc -p .)"
npx --no-install tsc -p . || die "TypeScript compilation failed (see above)"
chmod +x dist/src/cli/main.js dist/src/cli/mount-helper.js

# mount(8) finds `mount.fuse.unionfs-ts` only in /sbin. Installing it there is a step of its own (it is
# system-wide, and points at one installation): `npx unionfs-ts install-helper`. The tests never need it.
helper=$(readlink -f /sbin/mount.fuse.unionfs-ts 2>/dev/null || true)
if [ -z "$helper" ] || [ ! -e "$helper" ]; then
  say "note: mount -t fuse.unionfs-ts and fstab lines need the mount(8) helper: npx unionfs-ts install-helper"
fi
say "ready"
