#!/usr/bin/env bash
# Script test: scripts/services.sh brings every server into the mode asked for. Up in plain
# mode, then LOGSHIP_SECURE=1 up must restart Kafka in secure mode (saying so in one line) and
# come up within 240 s with every listener the secure tests use; then plain again closes the
# secure Kafka listeners. Prints "ok: …" / "FAILED: …" per check and a closing
# "services_modes: N passed, N failed" line; exits non-zero on any failure.
#
#   bash tests/scripts/services_modes.sh
set -uo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=tests/scripts/lib.sh
source tests/scripts/lib.sh
listening() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null; }
all_listening() { local p; for p in "$@"; do listening "$p" || { echo "  port $p is not listening"; return 1; }; done; }
none_listening() { local p; for p in "$@"; do ! listening "$p" || { echo "  port $p is still listening"; return 1; }; done; }
contains() { grep -qF -- "$2" <<<"$1" || { echo "  expected \"$2\" in:"; sed 's/^/    /' <<<"$1"; return 1; }; }

out=$(LOGSHIP_SECURE=0 bash scripts/services.sh up 2>&1); rc=$?
echo "$out"
check "services up in plain mode" test "$rc" = 0
check "plain Kafka has no secure listeners (9094, 9095 closed)" none_listening 9094 9095
check "Alertmanager among the default services (9193 listening)" all_listening 9193

started=$(date +%s)
out=$(LOGSHIP_SECURE=1 bash scripts/services.sh up 2>&1); rc=$?
took=$(( $(date +%s) - started ))
echo "$out"
check "LOGSHIP_SECURE=1 up after plain succeeds (${took} s)" test "$rc" = 0
check "... within 240 s" test "$took" -le 240
check "... says in one line that Kafka restarts in secure mode" \
  contains "$out" "kafka: running in plain mode, restarting it in secure mode (data kept)"
check "... with 9092 9094 9095 9200 9243 2379 2381 listening" \
  all_listening 9092 9094 9095 9200 9243 2379 2381
out=$(LOGSHIP_SECURE=1 bash scripts/services.sh up 2>&1); rc=$?
check "secure up again restarts nothing" contains "$out" "kafka: up at 127.0.0.1:9092 (already running; serves:"

out=$(LOGSHIP_SECURE=0 bash scripts/services.sh up 2>&1); rc=$?
echo "$out"
check "back to plain succeeds" test "$rc" = 0
check "... restarting Kafka in plain mode" \
  contains "$out" "kafka: running in secure mode, restarting it in plain mode (data kept)"
check "... with 9094 and 9095 closed again" none_listening 9094 9095
check "... and 9092 serving" all_listening 9092

summary services_modes
