#!/usr/bin/env bash
# The export benchmark (docs/bench.md, "Export"): builds the release binary and runs
# scripts/bench-export.py against the running services (scripts/services.sh up).
# RUNS (default 3) rounds; LINES (default 1,000,000) documents in the index it keeps.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
eval "$(bash scripts/services.sh env)"
nice -n 10 cargo build --release --quiet --bin logship
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/logship"
exec python3 scripts/bench-export.py --bin "$BIN" --es "${LOGSHIP_ES%%,*}" \
  --lines "${LINES:-1000000}" --runs "${RUNS:-3}"
