#!/usr/bin/env bash
# `npm run bench [-- OPTIONS]`: installs what the bench uses (bench/setup.sh: only missing Debian packages),
# compiles the project (npx tsc -p .), then runs dist/bench/run.js with OPTIONS (see bench/README.md).
#
# Invariants: needs root; a compile error elsewhere in the tree is reported but does not stop the bench as
# long as dist/bench/run.js and the CLI exist (tsc still emits); the bench itself unmounts everything.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: must run as root (it mounts filesystems and drops caches)" >&2
  exit 2
fi
case " $* " in
*" -h "* | *" --help "*) ;;
*) bash bench/setup.sh ;;
esac
if ! npx --no-install tsc -p . >&2; then
  echo "bench: warning: tsc reported errors (see above); running what was emitted" >&2
fi
[ -f dist/bench/run.js ] || {
  echo "bench: dist/bench/run.js was not built" >&2
  exit 1
}
exec node dist/bench/run.js "$@"
