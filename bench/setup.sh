#!/usr/bin/env bash
# Installs the Debian packages the benchmark uses, only those missing. Idempotent; a second run is fast.
#
#   fio             random 4 KiB reads (without it the bench uses its own C/Node loop)
#   fuse-overlayfs  an anchor system (libfuse3, C)
#   unionfs-fuse    an anchor system (libfuse2, C)
#   gcc, libc6-dev  compiling the bench's own small C helper (bench/fsops.c) into /tmp at run time
#
# Kernel overlayfs needs no package. A package that cannot be installed (no network, no apt) is reported
# and skipped: the bench then leaves that system out, or falls back to its Node loops; it never fails for it.
set -uo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/setup.sh: not root; not installing packages" >&2
  exit 0
fi

packages=(fio fuse-overlayfs unionfs-fuse gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [ "${status:0:2}" = "ii" ] || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "bench/setup.sh: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null >/dev/null 2>&1 || echo "bench/setup.sh: apt-get update failed" >&2
for p in "${missing[@]}"; do
  apt-get install -y -qq --no-install-recommends "$p" </dev/null >/dev/null 2>&1 ||
    echo "bench/setup.sh: could not install $p; the bench goes on without it" >&2
done
exit 0
