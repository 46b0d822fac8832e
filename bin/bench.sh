#!/usr/bin/env bash
# Run every benchmark (tests/bench/bench_*.py, each a standalone script printing a markdown table)
# and print their tables one after the other. Extra arguments go to every script.
# Each script's log messages (stderr) go to logs/bench-<name>.log, so only the tables are printed.
# Exit 1 if any benchmark failed (the others still run).
set -uo pipefail
source "$(dirname "$0")/_env.sh"
cd "$TASKHUB_SRC"
sync_env || exit 1
shopt -s nullglob
scripts=(tests/bench/bench_*.py)
mkdir -p logs
if [ ${#scripts[@]} -eq 0 ]; then echo "no benchmarks in tests/bench/"; exit 0; fi
status=0
failed=()
echo "# TaskHub benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc 2>/dev/null || echo '?') CPUs)"
for script in "${scripts[@]}"; do
  name=$(basename "$script" .py)
  echo
  echo "## ${name#bench_}"
  echo
  if ! "$UV" run --locked python "$script" "$@" 2>"logs/$name.log"; then
    echo "(${name} failed; the end of logs/$name.log:)"
    tail -n 15 "logs/$name.log" | sed 's/^/    /'
    failed+=("$name"); status=1
  fi
done
if [ $status -ne 0 ]; then echo; echo "failed: ${failed[*]}" >&2; fi
exit $status
