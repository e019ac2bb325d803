#!/usr/bin/env bash
# The alert evaluation benchmark (docs/bench.md, "Alerts"): builds the release binary and runs
# scripts/bench-alerts.py against the running services (scripts/services.sh up).
# LINES (default 5,000,000) history documents in the index it keeps, RATE (1,000) lines/s,
# RULES (100), PHASE (360) seconds for each of its two phases (quiet, one agent behind).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
eval "$(bash scripts/services.sh env)"
nice -n 10 cargo build --release --quiet --bin logship
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/logship"
exec python3 scripts/bench-alerts.py --bin "$BIN" --es "${LOGSHIP_ES%%,*}" \
  --kafka "$LOGSHIP_KAFKA" --etcd "${LOGSHIP_ETCD%%,*}" \
  --lines "${LINES:-5000000}" --rate "${RATE:-1000}" --rules "${RULES:-100}" --phase "${PHASE:-360}"
