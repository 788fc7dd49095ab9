#!/usr/bin/env bash
# Installs a small `unionfs-ts` executable that runs this checkout's CLI, so that tools wanting one stable
# program path can call it, e.g. a container engine's `mount_program` in storage.conf:
#
#   bash scripts/install-bin.sh                       # writes /usr/local/bin/unionfs-ts
#   bash scripts/install-bin.sh /some/dir/unionfs-ts  # writes it there instead
#   bash scripts/install-bin.sh --uninstall [DEST]    # removes it (only a wrapper this script wrote)
#
# The wrapper is `exec NODE CHECKOUT/dist/src/cli/main.js "$@"`, with both paths absolute and fixed when
# it is written (an engine may call it with another PATH and cwd). It never replaces a file it did not
# write (npm's own `unionfs-ts` link, say) unless given --force. Needs a built tree (scripts/setup.sh).
#
# Set UNIONFS_TS_MOUNT_LOG=FILE in the caller's environment (engines pass theirs on) and every call is
# appended to FILE: its cwd, each argument on its own line, and its exit status. That is how
# examples/podman shows what podman passes to its mount program.
set -euo pipefail

MARK="# unionfs-ts wrapper, written by scripts/install-bin.sh"
die() {
  printf 'install-bin: error: %s\n' "$*" >&2
  exit 1
}

force=0
uninstall=0
dest=/usr/local/bin/unionfs-ts
while [ $# -gt 0 ]; do
  case $1 in
    --force) force=1 ;;
    --uninstall) uninstall=1 ;;
    -h | --help)
      sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*) die "unknown option '$1'" ;;
    *) dest=$1 ;;
  esac
  shift
done

ours() { [ -f "$1" ] && grep -qxF "$MARK" "$1"; }

if [ "$uninstall" -eq 1 ]; then
  if [ ! -e "$dest" ] && [ ! -L "$dest" ]; then exit 0; fi
  ours "$dest" || [ "$force" -eq 1 ] || die "$dest was not written by this script; not removing it (--force to remove anyway)"
  rm -f "$dest"
  printf 'install-bin: removed %s\n' "$dest"
  exit 0
fi

checkout=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cli="$checkout/dist/src/cli/main.js"
[ -f "$cli" ] || die "$cli is missing: run 'bash scripts/setup.sh' first"
node=$(command -v node) || die "node is not on PATH"
node=$(readlink -f "$node")
case "$checkout$node" in
  *"'"*) die "cannot write a wrapper for paths containing a single quote: $checkout, $node" ;;
esac
if { [ -e "$dest" ] || [ -L "$dest" ]; } && ! ours "$dest" && [ "$force" -eq 0 ]; then
  die "$dest exists and was not written by this script; not replacing it (--force to replace)"
fi

mkdir -p "$(dirname "$dest")"
tmp=$(mktemp "$(dirname "$dest")/.unionfs-ts.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<EOF
#!/bin/sh
$MARK
# Runs the unionfs-ts CLI of the checkout $checkout.
if [ -z "\${UNIONFS_TS_MOUNT_LOG:-}" ]; then
  exec '$node' '$cli' "\$@"
fi
{
  printf 'call pid=%s\n' "\$\$"
  printf '  cwd: %s\n' "\$(pwd -P)"
  i=0
  for a in "\$@"; do
    i=\$((i + 1))
    printf '  argv[%s]: %s\n' "\$i" "\$a"
  done
} >>"\$UNIONFS_TS_MOUNT_LOG"
'$node' '$cli' "\$@"
status=\$?
printf '  exit: %s\n' "\$status" >>"\$UNIONFS_TS_MOUNT_LOG"
exit "\$status"
EOF
chmod 0755 "$tmp"
mv -f "$tmp" "$dest"
trap - EXIT
printf 'install-bin: %s -> %s %s\n' "$dest" "$node" "$cli"
