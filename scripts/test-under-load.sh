#!/usr/bin/env bash
# Runs `npm test` while stress-ng keeps every core busy: the suite must not depend on how fast or idle the machine
# is. Usage: bash scripts/test-under-load.sh [runs] (default 1; the suite must pass every run).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
command -v stress-ng >/dev/null || { echo "test-under-load: stress-ng not found (apt-get install stress-ng)" >&2; exit 2; }
for ((i = 1; i <= runs; i++)); do
  echo "== test-under-load: run $i of $runs, $(nproc) cores busy"
  stress-ng --cpu "$(nproc)" --cpu-method matrixprod --timeout 3600s --quiet &
  load=$!
  status=0
  npm test || status=$?
  kill "$load" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then echo "test-under-load: run $i failed (exit $status)" >&2; exit "$status"; fi
done
echo "test-under-load: $runs run(s) passed under load"
