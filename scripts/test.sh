#!/usr/bin/env bash
# Everything CI checks, in order: setup, lint (eslint, prettier), unit tests, integration tests, the
# demo and the container example; then asserts that no FUSE or overlay mount and no test daemon was left behind.
#
# Every step runs even when an earlier one failed (except setup), each under a time limit; the exit
# status is non-zero if any step failed. All temp dirs of the run live under one fresh TMPDIR, which is
# how leaks are found and cleaned up. The last line counts the tests: "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

bash scripts/setup.sh || {
  echo "test: setup failed, nothing was run"
  exit 1
}

RUN_TMP=$(mktemp -d /tmp/unionfs-ts-run.XXXXXX)
chmod 755 "$RUN_TMP"
export TMPDIR=$RUN_TMP
LOGS=$RUN_TMP/logs
mkdir "$LOGS"

failed_steps=()
summary=()
passed=0
failed=0
skipped=0

# Mounts of the kinds the tests make (fuse*, overlay) under this run's TMPDIR, one mountpoint a line.
leaked_mounts() {
  awk -v root="$RUN_TMP/" '($3 ~ /^fuse/ || $3 == "overlay") && index($2, root) == 1 { print $2 }' /proc/self/mounts |
    sed 's/\\040/ /g; s/\\011/\t/g; s/\\134/\\/g'
}

# Test daemons of this run: processes whose environment has both this run's TMPDIR and a test tag.
run_daemons() {
  local env_file pid
  for env_file in /proc/[0-9]*/environ; do
    pid=${env_file#/proc/}
    pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    if grep -qzxF "TMPDIR=$RUN_TMP" "$env_file" 2>/dev/null &&
      grep -qz '^UNIONFS_TS_TEST_TAG=' "$env_file" 2>/dev/null; then
      # Skip zombies: they are gone already.
      [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = "Z" ] || echo "$pid"
    fi
  done
}

# Takes down whatever this run left mounted (umount, then umount -l) and SIGKILLs its daemons.
clean_leftovers() {
  local m pid
  while IFS= read -r m; do
    [ -n "$m" ] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(leaked_mounts | sort -r)
  for pid in $(run_daemons); do kill -KILL "$pid" 2>/dev/null || true; done
}

# count_mocha LOG: adds mocha's "N passing / N failing / N pending" from LOG to the totals.
count_mocha() {
  local n
  n=$(grep -Eo '^ *[0-9]+ passing' "$1" | tail -1 | grep -Eo '[0-9]+') && passed=$((passed + n))
  n=$(grep -Eo '^ *[0-9]+ failing' "$1" | tail -1 | grep -Eo '[0-9]+') && failed=$((failed + n))
  n=$(grep -Eo '^ *[0-9]+ pending' "$1" | tail -1 | grep -Eo '[0-9]+') && skipped=$((skipped + n))
  return 0
}

# step NAME SECONDS CMD...: runs CMD with a time limit, output to the terminal and to a log.
step() {
  local name=$1 limit=$2 start rc log
  shift 2
  log="$LOGS/${name// /-}.log"
  printf '\n=== %s\n' "$name"
  start=$SECONDS
  timeout -k 20 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    printf 'test: %s exceeded its %ss limit; detaching its mounts and killing its daemons\n' "$name" "$limit"
    clean_leftovers
  fi
  case $name in unit* | integration*) count_mocha "$log" ;; esac
  if [ "$rc" -eq 0 ]; then
    summary+=("$(printf 'ok    %-18s %4ss' "$name" $((SECONDS - start)))")
  else
    summary+=("$(printf 'FAIL  %-18s %4ss  (exit %s)' "$name" $((SECONDS - start)) "$rc")")
    failed_steps+=("$name")
  fi
}

# The tools are run from node_modules/.bin (what npx runs) so that a time limit reaches the tool itself.
bin=node_modules/.bin
step "eslint" 300 "$bin/eslint" .
step "prettier" 300 "$bin/prettier" --check .
if [ -n "$(find dist/test/unit -name '*.test.js' 2>/dev/null | head -1)" ]; then
  step "unit tests" 300 "$bin/mocha" 'dist/test/unit/**/*.test.js'
else
  summary+=("$(printf 'skip  %-18s        (no unit tests in dist/test/unit)' "unit tests")")
fi
step "integration tests" 900 "$bin/mocha" --timeout 60000 'dist/test/integration/**/*.test.js'
step "demo" 120 bash examples/abc-demo/run.sh
step "container example" 180 bash examples/container/run.sh

# Mocha's failure reports, kept to be printed again at the end, where a CI log's tail shows them.
failure_reports=""
for log in "$LOGS"/unit-tests.log "$LOGS"/integration-tests.log; do
  if [ -f "$log" ] && grep -Eq '^ *[0-9]+ failing' "$log"; then
    failure_reports+=$(printf '\n=== failures in %s (60 lines at most)\n' "$(basename "$log" .log)")
    failure_reports+=$'\n'$(sed -n '/^ *[0-9]* failing/,$p' "$log" | head -60)$'\n'
  fi
done

# --- nothing may be left behind ------------------------------------------------------------------
printf '\n=== leftovers\n'
leaks=$(leaked_mounts)
if [ -n "$leaks" ]; then
  printf 'test: LEAKED MOUNTS (now taken down):\n%s\n' "$leaks"
  failed_steps+=("leaked mounts")
fi
daemons=$(run_daemons | tr '\n' ' ')
if [ -n "$daemons" ]; then
  printf 'test: test daemons still running (now killed): %s\n' "$daemons"
  ps -o pid,args -p "${daemons// /,}" 2>/dev/null | sed 's/^/  /' || true
  failed_steps+=("leftover daemons")
fi
clean_leftovers
if [ -n "$(leaked_mounts)" ]; then
  printf 'test: still mounted under %s after cleanup; leaving it in place\n' "$RUN_TMP"
else
  [ -z "$leaks" ] && [ -z "$daemons" ] && echo "no mounts or daemons left behind"
  rm -rf "$RUN_TMP"
fi

[ -n "$failure_reports" ] && printf '%s' "$failure_reports"
printf '\n=== summary\n'
printf '%s\n' "${summary[@]}"
if [ "${#failed_steps[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failed_steps[*]}"
fi
printf 'tests: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
[ "${#failed_steps[@]}" -eq 0 ]
