#!/usr/bin/env bash
# The classic aufs demo, on unionfs-ts: branch A (top, writable) over branch B (read-only), merged on C.
#
#   A: a, x ("x from A")      B: b, x ("x from B")      C = A:B
#
# Shows the merged view, a copy-up on write and a whiteout on delete, checks each step, and always
# unmounts C on the way out (also when a step fails). Exits non-zero if anything is not as expected.
# Needs root and a built tree: run `bash scripts/setup.sh` first (scripts/demo.sh does both).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLI="$ROOT/dist/src/cli/main.js"

unionfs-ts() { node "$CLI" "$@"; }
say() { printf '\n# %s\n' "$*"; }
show() { # show 'COMMAND': print it as typed, then run it
  printf '$ %s\n' "$1"
  eval "$1"
}
fail() {
  printf 'demo: FAILED: %s\n' "$*" >&2
  exit 1
}
check() { # check DESCRIPTION COMMAND... : fail unless COMMAND succeeds
  local what=$1
  shift
  "$@" || fail "$what"
}
same() { [ "$1" = "$2" ]; }
is_mounted() { awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/self/mounts; }
not_mounted() { ! is_mounted "$1"; }
# `tree` comes from scripts/setup.sh; without it, a plain find listing does.
command -v tree >/dev/null || tree() {
  local d
  for d in "$@"; do
    case $d in -*) continue ;; esac
    printf '%s\n' "$d"
    (cd "$d" && find . -mindepth 1 | sort | sed 's|^\./|  |')
  done
}
listing() { (cd "$1" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort | tr '\n' ' '); }

[ "$(id -u)" -eq 0 ] || fail "must run as root (mounting needs it)"
[ -f "$CLI" ] || fail "$CLI is missing: run 'bash scripts/setup.sh' first"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/unionfs-ts-demo.XXXXXX")
cleanup() {
  local status=$?
  cd /
  if is_mounted "$WORK/C"; then
    unionfs-ts umount "$WORK/C" || umount "$WORK/C" || umount -l "$WORK/C" || true
  fi
  if grep -qF " $WORK/" /proc/self/mounts; then
    printf 'demo: still mounted under %s, not deleting it\n' "$WORK" >&2
    status=1
  else
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
cd "$WORK"

say "Two branches: A will be the top (writable) branch, B the read-only one below it."
mkdir A B C
printf 'a from A\n' >A/a
printf 'x from A\n' >A/x
printf 'b from B\n' >B/b
printf 'x from B\n' >B/x
show 'tree -a --noreport A B'

say "Merge them on C: A over B."
show 'unionfs-ts mount A:B C'
check "C is not mounted after 'unionfs-ts mount' returned" is_mounted "$WORK/C"

say "C shows a, b and a single x."
show 'tree -a --noreport C'
check "C should list exactly a b x" same "$(listing C)" "a b x "

say "x exists in both branches: the top branch wins, so C/x is A's."
show 'cat C/x'
check "C/x should hold A's text" same "$(cat C/x)" "x from A"

say "Append to C/b. b lives only in B, which is read-only: it is copied up into A first."
show 'echo change >>C/b'
show 'cat A/b'
show 'cat B/b'
check "A/b should be B's b plus the change" same "$(cat A/b)" "$(printf 'b from B\nchange')"
check "B/b should be unchanged" same "$(cat B/b)" "b from B"
check "C/b should show the changed file" same "$(cat C/b)" "$(printf 'b from B\nchange')"

say "Remove C/b. B keeps its b; A gets a whiteout, .wh.b, that hides it."
show 'rm C/b'
show 'ls -A A'
show 'cat B/b'
show 'tree -a --noreport C'
check "A/.wh.b should exist" test -e A/.wh.b
check "B/b should be untouched" same "$(cat B/b)" "b from B"
check "b should be gone from C" test ! -e C/b
check "C should list exactly a x" same "$(listing C)" "a x "

say "Unmount C: the daemon exits by itself and C is an empty directory again."
show 'unionfs-ts umount C'
check "C is still mounted after 'unionfs-ts umount'" not_mounted "$WORK/C"
check "C should be empty once unmounted" same "$(listing C)" ""
check "nothing may stay mounted under $WORK" test -z "$(grep -F " $WORK/" /proc/self/mounts || true)"

printf '\ndemo: OK\n'
