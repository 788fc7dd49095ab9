#!/usr/bin/env bash
# A real container engine on unionfs-ts: podman's overlay storage with unionfs-ts as its `mount_program`
# (the fuse-overlayfs contract), in a private store that is deleted at the end.
#
#   1. installs what is missing (podman, runc, busybox-static, fuse3) and builds unionfs-ts if dist/ is
#      missing (SETUP=1: always run scripts/setup.sh);
#   2. installs the wrapper /usr/local/bin/unionfs-ts (scripts/install-bin.sh) that storage.conf names;
#   3. builds a busybox root filesystem tarball from Debian's busybox-static and `podman import`s it;
#   4. `podman build`s two RUN layers on it: one adds files and deletes a base file (a whiteout), the
#      other replaces a directory (`rm -rf /d && mkdir /d`: an opaque directory);
#   5. `podman run --rm`s a check of the merged view, shows that a file one container writes is not seen
#      by the next, and what the container's upper layer holds (overlay-format whiteout, opaque xattr);
#   6. shows exactly what podman passed to the mount program, and replays such a mount the way
#      containers/storage does without a mount program (cwd = the store, relative `l/…` layer links).
#
# Every check that fails makes the script exit non-zero. Whatever it made is removed on the way out,
# also on failure or Ctrl-C: containers and images (with their mounts), the store's private bind mount,
# the temp dir, the wrapper if it was not there before, and /var/lib/containers/cache (podman 4.3's
# `import` writes its blob-info cache there whatever --root says) if it was not there before.
#
# Podman runs rootful with: --runtime runc (crun fails on cgroup v1 hybrid hosts), --cgroup-manager
# cgroupfs, --events-backend file, --network=none, ulimits no higher than this shell's hard limits, and a
# private containers.conf/storage.conf. No network is used: the only image comes from a local tarball.
#
# Environment: MOUNT_PROGRAM=PATH to use another wrapper path (default /usr/local/bin/unionfs-ts);
# KEEP_TMP=1 to keep the temp dir (mounts are still taken down).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
MOUNT_PROGRAM=${MOUNT_PROGRAM:-/usr/local/bin/unionfs-ts}
IMAGE=localhost/unionfs-ts-example/busybox

say() { printf '\n# %s\n' "$*"; }
show() { # show 'COMMAND': print it as typed, then run it
  printf '$ %s\n' "$1"
  eval "$1"
}
fail() {
  printf 'podman example: FAILED: %s\n' "$*" >&2
  exit 1
}
check() { # check DESCRIPTION COMMAND... : fail unless COMMAND succeeds
  local what=$1
  shift
  "$@" || fail "$what"
}
same() { [ "$1" = "$2" ]; }
contains() { case $1 in *"$2"*) return 0 ;; *) return 1 ;; esac }

[ "$(id -u)" -eq 0 ] || fail "must run as root (rootful podman, FUSE mounts, apt-get)"

# --- 1. packages and build ---------------------------------------------------------------------------
say "Install what is missing: podman, runc, busybox-static, fuse3; then build unionfs-ts."
packages=(podman runc busybox-static fuse3)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [ "${status:0:2}" = "ii" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  printf 'installing: %s\n' "${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null || fail "apt-get update failed"
  # --no-install-recommends: podman recommends crun, fuse-overlayfs, slirp4netns…, none of them used here.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
    fail "apt-get install ${missing[*]} failed"
else
  printf 'already installed: %s\n' "${packages[*]}"
fi
BUSYBOX=$(dpkg -L busybox-static | grep -m1 -E '/bin/busybox$') || fail "busybox-static ships no bin/busybox?"
if [ -f "$ROOT/dist/src/cli/main.js" ] && [ "${SETUP:-0}" != 1 ]; then
  # Not rebuilt every time: setup.sh may run `npm ci`, which a shared checkout should not get unasked.
  printf 'unionfs-ts is built (%s); SETUP=1 runs scripts/setup.sh anyway\n' "$ROOT/dist"
else
  bash "$ROOT/scripts/setup.sh"
fi
podman --version

# --- temp dir and cleanup ----------------------------------------------------------------------------
T=$(mktemp -d /tmp/unionfs-ts-podman.XXXXXX)
G=$T/graph # graphroot
WRAPPER_STATE=absent
[ -e "$MOUNT_PROGRAM" ] && WRAPPER_STATE=present
BLOBCACHE_EXISTED=0
[ -e /var/lib/containers ] && BLOBCACHE_EXISTED=1

PODMAN_ARGS=(
  --root "$G" --runroot "$T/runroot" --tmpdir "$T/tmp"
  # podman 4.3 drops the storage.conf driver options (mount_program!) when --root is given: repeat it here.
  --storage-opt "overlay.mount_program=$MOUNT_PROGRAM"
  --runtime runc --cgroup-manager cgroupfs --events-backend file
)
pm() { # podman with the private configuration; every call logs its mount_program calls
  CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf \
    UNIONFS_TS_MOUNT_LOG=$T/mount.log timeout --foreground 120 podman "${PODMAN_ARGS[@]}" "$@"
}
say_podman() { printf '$ podman … %s\n' "$(printf '%q ' "$@" | sed "s|$T|\$T|g")"; }
shown() { # prints the podman command ($T for the temp dir, … for PODMAN_ARGS), then runs it
  say_podman "$@"
  pm "$@"
}
mounts_under() { awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts; }
# unionfs-ts daemons serving a mount of this store (their command line names a path under $T).
our_daemons() {
  local pid
  for pid in $(pgrep -f "dist/src/cli/main.js.* $T/" || true); do
    [ "$pid" != "$$" ] && printf '%s\n' "$pid"
  done
}

cleanup() {
  local status=$? m pid
  trap - EXIT INT TERM
  cd /
  if [ -d "$G" ]; then
    pm rm --all --force --time 0 >/dev/null 2>&1 || true
    pm rmi --all --force >/dev/null 2>&1 || true
  fi
  # Whatever is still mounted under $T (a unionfs-ts mount of a failed run, the store's private bind
  # mount of $G/overlay), deepest first.
  for m in $(mounts_under "$T" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || printf 'cannot unmount %s\n' "$m" >&2
  done
  for _ in $(seq 50); do
    [ -z "$(our_daemons)" ] && break
    sleep 0.1
  done
  for pid in $(our_daemons); do
    printf 'podman example: unionfs-ts daemon %s still running after its unmount; killing it\n' "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
    status=1
  done
  if [ "$WRAPPER_STATE" = absent ]; then
    bash "$ROOT/scripts/install-bin.sh" --uninstall "$MOUNT_PROGRAM" >/dev/null || status=1
  elif [ "$WRAPPER_STATE" = saved ]; then
    cp -p "$WRAPPER_BACKUP" "$MOUNT_PROGRAM" && rm -f "$WRAPPER_BACKUP" || status=1
  fi
  if [ -n "$(mounts_under "$T")" ]; then
    printf 'podman example: still mounted under %s, not deleting it:\n%s\n' "$T" "$(mounts_under "$T")" >&2
    status=1
  elif [ "${KEEP_TMP:-0}" = 1 ]; then
    printf 'podman example: kept %s\n' "$T"
  else
    rm -rf "$T"
  fi
  if [ "$BLOBCACHE_EXISTED" = 0 ]; then
    rm -rf /var/lib/containers/cache
    rmdir /var/lib/containers 2>/dev/null || true
  fi
  [ "$status" -eq 0 ] && printf '\npodman example: OK\n'
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$G" "$T/runroot" "$T/tmp" "$T/net" "$T/ctx" "$T/rootfs"

# --- 2. the wrapper --------------------------------------------------------------------------------
say "storage.conf names one program path: install the unionfs-ts wrapper there."
if [ "$WRAPPER_STATE" = present ]; then
  WRAPPER_BACKUP=$T/wrapper.backup
  cp -p "$MOUNT_PROGRAM" "$WRAPPER_BACKUP"
  WRAPPER_STATE=saved # put back as it was on the way out
fi
bash "$ROOT/scripts/install-bin.sh" "$MOUNT_PROGRAM" ||
  fail "could not install the wrapper at $MOUNT_PROGRAM (set MOUNT_PROGRAM=another/path)"

# --- 3. the base image -----------------------------------------------------------------------------
say "A busybox root filesystem: $BUSYBOX, its applets as symlinks, a minimal /etc, and some files to delete later."
cd "$T/rootfs"
mkdir -p bin etc root tmp proc sys dev d/sub
cp "$BUSYBOX" bin/busybox
for applet in $(bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
printf 'base\n' >etc/base-file
printf 'to be deleted\n' >etc/doomed
printf 'old 1\n' >d/old1
printf 'old 2\n' >d/old2
printf 'deep\n' >d/sub/deep
chmod 1777 tmp
show 'ls -A . d; ls bin | wc -l'
tar --numeric-owner --owner=0 --group=0 -C "$T/rootfs" -cf "$T/busybox.tar" .
cd "$T"

say "The private configuration: overlay storage with unionfs-ts as its mount_program."
# runc sets the container's rlimits, and without CAP_SYS_RESOURCE it cannot go above its own hard limits:
# nofile as this shell's, nproc no higher than pid_max (podman lowers its own to that, it seems).
hard_limit() { awk -v what="$1" 'index($0, what) == 1 { print $(NF - 1) }' /proc/self/limits; }
nofile=$(hard_limit "Max open files")
nproc=$(hard_limit "Max processes")
pid_max=$(cat /proc/sys/kernel/pid_max)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi
ulimits="\"nproc=$nproc:$nproc\""
[ "$nofile" = unlimited ] || ulimits+=", \"nofile=$nofile:$nofile\""
cat >"$T/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$G"
runroot = "$T/runroot"

[storage.options.overlay]
mount_program = "$MOUNT_PROGRAM"
EOF
cat >"$T/containers.conf" <<EOF
[containers]
default_ulimits = [$ulimits]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$T/tmp"
image_copy_tmp_dir = "$T/tmp"

[network]
network_config_dir = "$T/net"
EOF
show 'cat storage.conf containers.conf'
printf 'podman runs as: podman %s\n' "$(printf '%q ' "${PODMAN_ARGS[@]}" | sed "s|$T|\$T|g")"
# shellcheck disable=SC2016 # $T is shown as such
printf '  with CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf UNIONFS_TS_MOUNT_LOG=$T/mount.log\n'
check "podman does not report $MOUNT_PROGRAM as its overlay mount_program" \
  contains "$(pm info --format '{{json .Store.GraphOptions}}')" "$MOUNT_PROGRAM"

say "Import the tarball as an image (no registry, no network)."
shown import --quiet "$T/busybox.tar" "$IMAGE:base"

say "The container's root is a unionfs-ts mount (first line of its /proc/mounts):"
root_line=$(pm run --rm --network=none --pull=never "$IMAGE:base" head -n1 /proc/mounts)
printf '%s\n' "$root_line"
check "the container root should be fuse.unionfs-ts, not: $root_line" contains "$root_line" " / fuse.unionfs-ts "

# --- 4. podman build -------------------------------------------------------------------------------
say "Build two layers on it: add files and delete a base file; then replace a whole directory."
cat >"$T/ctx/Containerfile" <<EOF
FROM $IMAGE:base
RUN echo one >/added1 && mkdir -p /opt/app && echo app >/opt/app/conf && rm /etc/doomed
RUN rm -rf /d && mkdir /d && echo new >/d/f && echo two >/added2 && echo more >>/opt/app/conf
EOF
show 'cat ctx/Containerfile'
shown build --network=none --pull=never --layers -t "$IMAGE:built" "$T/ctx"
nlayers=$(pm image inspect --format '{{len .RootFS.Layers}}' "$IMAGE:built")
check "the built image should have 3 layers (base + 2 RUN), not $nlayers" same "$nlayers" 3

say "How committed layers are stored: with a mount_program, containers/storage keeps them in the aufs format (.wh.NAME files), which unionfs-ts reads as whiteouts."
top_diff=$(pm image inspect --format '{{.GraphDriver.Data.UpperDir}}' "$IMAGE:built")
top_id=$(basename "$(dirname "$top_diff")")
lower_links=$(cat "$G/overlay/$top_id/lower") # l/B:l/A, relative to $G/overlay
mid_link=${lower_links%%:*}
show "ls -A '$G/overlay/$mid_link/etc' '$top_diff/d'"
check "the first RUN layer should hold etc/.wh.doomed" test -e "$G/overlay/$mid_link/etc/.wh.doomed"

# --- 5. podman run ---------------------------------------------------------------------------------
say "Run the built image and check the view it gets."
cat >"$T/check.sh" <<'EOF'
set -u
bad=0
expect() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; bad=1; fi; }
expect "/etc/doomed is deleted (whiteout)"             '[ ! -e /etc/doomed ]'
expect "/d shows only the new content (opaque dir)"    '[ "$(ls -A /d | tr "\n" " ")" = "f " ]'
expect "/d/f is the new file"                          '[ "$(cat /d/f)" = new ]'
expect "/d/old1, /d/sub are gone"                      '[ ! -e /d/old1 ] && [ ! -e /d/sub ]'
expect "/added1 and /added2 are there"                 '[ "$(cat /added1 /added2)" = "$(printf "one\ntwo")" ]'
expect "/opt/app/conf has both lines"                  '[ "$(cat /opt/app/conf)" = "$(printf "app\nmore")" ]'
expect "base files are still there"                    '[ "$(cat /etc/base-file)" = base ] && [ -x /bin/sh ]'
expect "/ is a unionfs-ts mount"                       'grep -q "^[^ ]* / fuse.unionfs-ts " /proc/mounts'
exit $bad
EOF
shown run --rm --network=none --pull=never -v "$T/check.sh:/check.sh:ro" "$IMAGE:built" sh /check.sh ||
  fail "the container's view is not as expected (see above)"

say "A container writes a file; the next container of the same image does not see it."
shown run --rm --network=none --pull=never "$IMAGE:built" sh -c 'echo secret >/written && cat /written'
second=(run --rm --network=none --pull=never "$IMAGE:built" sh -c 'test ! -e /written && echo absent || echo PRESENT')
say_podman "${second[@]}"
out=$(pm "${second[@]}")
printf '%s\n' "$out"
check "a second container sees /written from the first one" same "$out" absent

say "What a container's own (upper) layer holds: overlay-format whiteouts and opaque directories."
shown run --name upper-check --network=none --pull=never "$IMAGE:built" \
  sh -c 'rm /etc/base-file && rm -rf /opt && mkdir /opt && echo x >/opt/x' >/dev/null
upper=$(pm inspect --format '{{.GraphDriver.Data.UpperDir}}' upper-check)
show "ls -la '$upper/etc/base-file'; getfattr -n trusted.overlay.opaque '$upper/opt'"
check "etc/base-file should be a 0/0 character device in the upper layer" \
  same "$(stat -c '%F %t:%T' "$upper/etc/base-file")" "character special file 0:0"
check "opt should carry trusted.overlay.opaque=y" \
  same "$(getfattr --only-values -n trusted.overlay.opaque "$upper/opt" 2>/dev/null)" y
pm rm upper-check >/dev/null

# --- 6. what podman passed, and the relative-path form -------------------------------------------
say "What podman passed to the mount program (logged by the wrapper), call by call:"
show 'cat mount.log'
# Each call is a block: "call pid=N", "  cwd: DIR", "  argv[I]: ARG"…, "  exit: N". The mount calls are
# those with -o; podman also runs `--version` (from its own cwd) to report the program in `podman info`.
summary=$(awk -v home="$G/overlay" '
  function end_call() {
    if (!open || a[1] != "-o") return
    mounts++
    if (cwd != home) bad = bad "cwd " cwd "; "
    if (n != 3 || a[2] !~ /^lowerdir=/ || a[3] !~ /\/merged$/) bad = bad "argv " a[2] " " a[3] "; "
    if (st != "0") bad = bad "exit " st "; "
  }
  /^call / { end_call(); open = 1; n = 0; cwd = ""; st = ""; delete a; next }
  /^  cwd: / { cwd = substr($0, 8); next }
  /^  argv\[/ { a[++n] = substr($0, index($0, "]: ") + 3); next }
  /^  exit: / { st = substr($0, 9) }
  END { end_call(); printf "%d mount calls, all -o lowerdir=… DIR/merged from cwd %s, exit 0", mounts, home
        if (bad != "") printf "; NOT SO: %s", bad
        print "" }' "$T/mount.log")
printf '%s\n' "$summary"
check "podman should have called the mount program at least 5 times, each as expected: $summary" \
  test "${summary%% *}" -ge 5 -a "${summary#*NOT SO}" = "$summary"

say "The same kind of mount with the store's relative layer links (l/…) from cwd \$G/overlay, as containers/storage builds it when absolute paths would not fit in a page:"
mkdir -p "$G/overlay/unionfs-ts-replay/diff" "$G/overlay/unionfs-ts-replay/work" "$T/replay"
replay_opts="lowerdir=l/$(cat "$G/overlay/$top_id/link"):$lower_links,upperdir=unionfs-ts-replay/diff,workdir=unionfs-ts-replay/work"
show "(cd '$G/overlay' && '$MOUNT_PROGRAM' -o '$replay_opts' '$T/replay')"
check "the replay should be a unionfs-ts mount" grep -qF " $T/replay fuse.unionfs-ts " /proc/self/mounts
show "ls -A replay replay/d"
check "replay: /etc/doomed should be gone" test ! -e "$T/replay/etc/doomed"
# shellcheck disable=SC2012 # plain names
check "replay: /d should hold only f" same "$(ls -A "$T/replay/d" | tr '\n' ' ')" "f "
check "replay: /added2 should be there" same "$(cat "$T/replay/added2")" two
rm "$T/replay/added1"
echo replay >"$T/replay/new"
check "replay: deleting added1 should leave a 0/0 whiteout in the relative upperdir" \
  same "$(stat -c '%t:%T' "$G/overlay/unionfs-ts-replay/diff/added1")" "0:0"
check "replay: new should be written to the relative upperdir" \
  same "$(cat "$G/overlay/unionfs-ts-replay/diff/new")" replay
show "umount '$T/replay'"
for _ in $(seq 100); do [ -z "$(our_daemons)" ] && break; sleep 0.1; done
check "the replay's daemon should exit after umount" test -z "$(our_daemons)"
rm -rf "$G/overlay/unionfs-ts-replay"

say "Nothing of unionfs-ts is left mounted:"
left=$(grep ' fuse.unionfs-ts ' /proc/self/mounts | grep -F " $T/" || true)
printf '%s\n' "${left:-(none)}"
check "unionfs-ts mounts are left under $T" test -z "$left"
