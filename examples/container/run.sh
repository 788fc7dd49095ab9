#!/usr/bin/env bash
# A tiny container on unionfs-ts: an image made of layers, in the way container engines stack them.
#
#   rw       empty, writable: everything the container writes lands here
#   (init)   made by run: /etc/hosts, /etc/hostname, /etc/resolv.conf, /proc, /dev (per container)
#   layer2   deletes /etc/motd (.wh.motd) and replaces /opt/app with an opaque directory (.wh..wh..opq)
#   layer1   adds /etc/motd and /opt/app/
#   base     a root filesystem made from Debian's busybox-static: /bin/busybox and its applet links
#
# `unionfs-ts run rw:layer2:layer1:base -- sh -c '…'` mounts the union (with an init layer), runs the
# shell in new mount, UTS and PID namespaces whose root is the union, and unmounts afterwards. The script then shows that the
# container's write landed in the rw layer only and that the host's mount table is as it was.
# Checks each step, exits non-zero if anything is not as expected, and always cleans up (trap).
# Needs root and a built tree: run `bash scripts/setup.sh` first (it also installs busybox-static).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLI="$ROOT/dist/src/cli/main.js"
BUSYBOX=/bin/busybox

unionfs-ts() { node "$CLI" "$@"; }
say() { printf '\n# %s\n' "$*"; }
fail() {
  printf 'container demo: FAILED: %s\n' "$*" >&2
  exit 1
}
check() { # check DESCRIPTION COMMAND... : fail unless COMMAND succeeds
  local what=$1
  shift
  "$@" || fail "$what"
}
same() { [ "$1" = "$2" ]; }
listing() { (cd "$1" && find . -mindepth 1 -printf '%P\n' | grep -v '^\.wh\.\.wh\.unionfs' | sort | tr '\n' ' '); }

[ "$(id -u)" -eq 0 ] || fail "must run as root (mounting and namespaces need it)"
[ -f "$CLI" ] || fail "$CLI is missing: run 'bash scripts/setup.sh' first"
[ -x "$BUSYBOX" ] || fail "$BUSYBOX is missing: run 'bash scripts/setup.sh' (it installs busybox-static)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/unionfs-ts-container.XXXXXX")
# Where run mounts the union: inside $WORK, so the cleanup below finds anything left there.
export TMPDIR=$WORK/tmp
cleanup() {
  local status=$? m
  cd /
  # run unmounts by itself; this is the safety net for a failed step.
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
  if grep -qF " $WORK/" /proc/self/mounts; then
    printf 'container demo: still mounted under %s, not deleting it\n' "$WORK" >&2
    status=1
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
cd "$WORK"
mkdir tmp

# The host's mount table without mounts other programs make meanwhile under /tmp (outside this demo's
# directory): concurrent test runs must not make the comparison fail.
host_mounts() {
  awk -v w="$WORK/" '!(index($5, "/tmp/") == 1 && index($5, w) != 1)' /proc/self/mountinfo
}

say "The base layer: a root filesystem made of one static busybox and its applet links."
mkdir -p layers/base/{bin,etc,root,tmp,opt}
chmod 1777 layers/base/tmp
cp "$BUSYBOX" layers/base/bin/busybox
for applet in sh ls cat echo rm mkdir ps mount hostname id touch grep wc env head sleep find; do
  ln -s busybox "layers/base/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >layers/base/etc/passwd
printf 'root:x:0:\n' >layers/base/etc/group
printf 'base\n' >layers/base/etc/image-version

say "layer1 adds /etc/motd and /opt/app/; layer2 deletes motd and replaces /opt/app (aufs whiteouts)."
mkdir -p layers/layer1/etc layers/layer1/opt/app layers/layer2/etc layers/layer2/opt/app
printf 'Welcome (from layer1)\n' >layers/layer1/etc/motd
printf 'app v1\n' >layers/layer1/opt/app/v1.txt
printf 'layer1\n' >layers/layer1/etc/image-version
touch layers/layer2/etc/.wh.motd layers/layer2/opt/app/.wh..wh..opq
printf 'app v2\n' >layers/layer2/opt/app/v2.txt

say "An empty rw layer (run adds the init layer under it, in a temp dir of its own)."
mkdir -p layers/rw
LAYERS=$WORK/layers/rw:$WORK/layers/layer2:$WORK/layers/layer1:$WORK/layers/base
find layers -mindepth 1 | sort | grep -v '^layers/base/bin/' | sed 's/^/  /'
ls -l "$BUSYBOX"

host_mounts >mountinfo.before

say "Run a shell in the container: new mount, UTS and PID namespaces, root = the union."
# shellcheck disable=SC2016 # expanded inside the container, not here
SCRIPT='echo "ls /: $(ls / | tr "\n" " ")"
echo "hostname file: $(cat /etc/hostname); hostname: $(hostname); my PID: $$"
echo "image-version: $(cat /etc/image-version)"
if [ -e /etc/motd ]; then echo "motd: visible"; else echo "motd: whited out"; fi
echo "/opt/app: $(ls -A /opt/app | tr "\n" " ")"
echo "mounts inside: $(cut -d" " -f2,3 /proc/self/mounts | tr "\n" ";")"
echo "written inside the container" >/root/hello.txt && echo "wrote /root/hello.txt"'
printf '$ unionfs-ts run --pid --hostname tiny LAYERS -- sh -c SCRIPT\n'
out=$(unionfs-ts run --pid --hostname tiny "$LAYERS" -- sh -c "$SCRIPT")
printf '%s\n' "$out" | sed 's/^/  | /'
check "ls / should list the image's directories and the init layer's mount points" grep -qx 'ls /: bin dev etc opt proc root tmp ' <<<"$out"
check "/etc/hostname should come from the init layer" grep -q 'hostname file: tiny; hostname: tiny; my PID: 1$' <<<"$out"
check "the top layer should win for /etc/image-version" grep -qx 'image-version: layer1' <<<"$out"
check "layer2's .wh.motd should hide layer1's motd" grep -qx 'motd: whited out' <<<"$out"
check "layer2's opaque /opt/app should hide layer1's files" grep -qx '/opt/app: v2.txt ' <<<"$out"
check "the shell should have written its file" grep -qx 'wrote /root/hello.txt' <<<"$out"

say "The write landed in the rw layer, and only there."
printf '$ find layers/rw\n'
(cd layers && find rw -mindepth 1 -not -path 'rw/.wh..wh.unionfs*' | sort | sed 's/^/  /')
check "rw should hold exactly root/hello.txt" same "$(listing layers/rw)" "root root/hello.txt "
check "rw/root/hello.txt should hold the text" same "$(cat layers/rw/root/hello.txt)" "written inside the container"
for l in layer2 layer1 base; do
  check "layer $l must not contain hello.txt" test -z "$(find "layers/$l" -name hello.txt)"
done

say "The host's mount table is unchanged: nothing mounted in the container leaked, the union is gone."
host_mounts >mountinfo.after
printf '$ diff mountinfo.before mountinfo.after\n'
if diff mountinfo.before mountinfo.after; then echo "  (no difference)"; else fail "the host's mount table changed"; fi
check "nothing may stay mounted under $WORK" test -z "$(grep -F " $WORK/" /proc/self/mounts || true)"

say "An exit status passes through: sh -c 'exit 7' gives 7."
set +e
unionfs-ts run "$LAYERS" -- sh -c 'exit 7'
rc=$?
set -e
printf '  exit status: %s\n' "$rc"
check "the exit status should be 7" same "$rc" 7

printf '\ncontainer demo: OK\n'
