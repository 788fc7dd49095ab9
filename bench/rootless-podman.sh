#!/usr/bin/env bash
# Container start under rootless podman with --userns=auto: unionfs-ts, fuse-overlayfs and native
# rootless overlay (kernel overlayfs in podman's user namespace: storage.conf without mount_program).
#
#   sudo bash bench/rootless-podman.sh [--runs N] [--image small|big] [--systems LIST]
#
# --image small: busybox and a minimal /etc (1 MB); big (default): that plus /usr/include and
# /usr/lib/python3 of this machine (about 180 MB, 12,000 files). --systems: a comma list of unionfs-ts,
# fuse-overlayfs, native (default all three). Needs root (it makes a user), podman, runc, uidmap, a
# static busybox and a built tree (bash scripts/setup.sh).
#
# It makes a user `unionfs-ts-bench` with 65536 subordinate ids (removed at the end), and for each system
# a store of its own under /tmp/ufs-bench-*. Every podman call runs as that user in a private mount
# namespace whose /dev/fuse is a 0666 node (as distributions ship it) and where the checkout is
# bind-mounted into the temp dir (as test/integration/rootless.test.ts does). Two figures per system,
# each the median of N runs (default 5) in milliseconds, wall clock around the podman command:
#   same ids: `podman run --rm --userns=auto IMG true`, N times in a row: each container gets the id
#             range the previous one freed;
#   new ids:  `podman run -d --userns=auto IMG sleep 600`, N times, each left running, so each one gets
#             ids no container had before: native overlay must give the image's files those owners first
#             (a copy of the layers chowned to the new range); a FUSE mount program maps them as it serves.
# Everything is removed at the end: the containers, every process of the user, the temp dir, the user.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd -P)

runs=5
image=big
systems=unionfs-ts,fuse-overlayfs,native
while [ $# -gt 0 ]; do
  case $1 in
    --runs)
      runs=$2
      shift
      ;;
    --image)
      image=$2
      shift
      ;;
    --systems)
      systems=$2
      shift
      ;;
    -h | --help)
      sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "rootless-podman: unknown argument '$1'" >&2
      exit 2
      ;;
  esac
  shift
done

die() {
  echo "rootless-podman: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || die "must run as root (it makes a user)"
for c in podman runc newuidmap setpriv unshare useradd; do command -v "$c" >/dev/null || die "$c is missing"; done
[ -f dist/src/cli/main.js ] || die "dist/src/cli/main.js is missing: run bash scripts/setup.sh"
node=$(readlink -f "$(command -v node)")

USER_NAME=unionfs-ts-bench
made_user=0
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent "$USER_NAME"
  made_user=1
fi
uid=$(id -u "$USER_NAME")
gid=$(id -g "$USER_NAME")
for f in subuid subgid; do
  if ! grep -q "^$USER_NAME:" "/etc/$f"; then
    next=$(awk -F: 'BEGIN { m = 100000 } { if ($2 + $3 > m) m = $2 + $3 } END { print m }' "/etc/$f")
    usermod "--add-${f}s" "$next-$((next + 65535))" "$USER_NAME"
  fi
done

T=$(mktemp -d /tmp/ufs-bench-XXXXXX)
cleanup() {
  local pids
  pids=$(ps -o pid= -u "$uid" || true)
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  for _ in $(seq 50); do ps -o pid= -u "$uid" >/dev/null || break; sleep 0.1; done
  rm -rf "$T"
  [ "$made_user" -eq 0 ] || userdel "$USER_NAME" || true
}
trap cleanup EXIT

mkdir -p "$T"/{dev,repo,bin,rootfs/bin,rootfs/etc,rootfs/tmp}
printf '#!/bin/sh\nexec %s %s "$@"\n' "$node" "$T/repo/dist/src/cli/main.js" >"$T/bin/unionfs-ts"
chmod 0755 "$T/bin/unionfs-ts"
busybox=$(command -v busybox) || die "busybox is missing"
cp "$busybox" "$T/rootfs/bin/busybox"
for a in $("$busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$T/rootfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$T/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$T/rootfs/etc/group"
chmod 1777 "$T/rootfs/tmp"
if [ "$image" = big ]; then
  mkdir -p "$T/rootfs/usr/lib"
  cp -a /usr/include "$T/rootfs/usr/"
  cp -aL /usr/lib/python3 "$T/rootfs/usr/lib/" 2>/dev/null || true
fi
tar --numeric-owner --owner=0 --group=0 -C "$T/rootfs" -cf "$T/image.tar" .
rm -rf "$T/rootfs"
fuse=$(stat -c '%t %T' /dev/fuse)
major=$((16#${fuse% *}))
minor=$((16#${fuse#* }))

# podman SYSTEM ARGS…: runs podman as the user with SYSTEM's store.
podman_as() {
  local s=$1 S=$T/$1 program=()
  shift
  case $s in
    unionfs-ts) program=(--storage-opt "overlay.mount_program=$T/bin/unionfs-ts") ;;
    fuse-overlayfs) program=(--storage-opt "overlay.mount_program=$(command -v fuse-overlayfs)") ;;
  esac
  env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME="$S/home" XDG_RUNTIME_DIR="$S/xdg" \
    TMPDIR="$S/tmp" CONTAINERS_CONF="$S/containers.conf" \
    unshare --mount --propagation private -- sh -c '
      set -e
      mount -t tmpfs -o mode=0755,size=16k tmpfs "$1/dev"
      mknod -m 0666 "$1/dev/fuse" c "$5" "$6"
      mount --bind "$1/dev/fuse" /dev/fuse
      mount --bind "$4" "$1/repo"
      mount --make-rshared /
      u=$2 g=$3
      shift 6
      exec setpriv --reuid="$u" --regid="$g" --init-groups -- "$@"
    ' sh "$T" "$uid" "$gid" "$REPO" "$major" "$minor" \
    podman --root "$S/graph" --runroot "$S/run" --tmpdir "$S/tmp" --storage-driver overlay "${program[@]}" \
    --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}
# median of the numbers on stdin
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2 ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)) }'; }

# ms SYSTEM ARGS…: milliseconds `podman ARGS` took (it must succeed)
ms() {
  local t0 t1
  t0=$(date +%s%N)
  podman_as "$@" >/dev/null 2>"$T/err" || {
    cat "$T/err" >&2
    die "podman ${*:2} failed on $1"
  }
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}

IMG=localhost/bench/rootless:$image
printf '%-16s %14s %14s   (ms, median of %s; image %s, %s)\n' system "same ids" "new ids" "$runs" "$image" \
  "$(du -sh "$T/image.tar" | cut -f1)"
for s in ${systems//,/ }; do
  S=$T/$s
  mkdir -p "$S"/{home,xdg,graph,run,tmp}
  chmod 0700 "$S/xdg"
  printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "%s/tmp"\n' \
    "$S" >"$S/containers.conf"
  chown -R "$uid:$gid" "$T"
  podman_as "$s" import --quiet "$T/image.tar" "$IMG" >/dev/null
  podman_as "$s" run --rm --network=none "$IMG" true # warm-up: the first start of the image
  same=$(for _ in $(seq "$runs"); do ms "$s" run --rm --network=none --userns=auto "$IMG" true; done | median)
  # A container holding the first range, so that each timed one below gets ids none had before.
  podman_as "$s" run -d --network=none --userns=auto "$IMG" sleep 600 >/dev/null
  new=$(for _ in $(seq "$runs"); do ms "$s" run -d --network=none --userns=auto "$IMG" sleep 600; done | median)
  printf '%-16s %14s %14s\n' "$s" "$same" "$new"
  podman_as "$s" rm --all --force --time 0 >/dev/null
done
