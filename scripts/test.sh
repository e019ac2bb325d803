#!/usr/bin/env bash
# Runs every test of logship against real servers on loopback:
#   1. system packages (scripts/deps.sh),
#   2. Kafka, Elasticsearch and etcd (scripts/services.sh up; stopped again on exit),
#   3. formatting and lint gates (cargo fmt --check, cargo clippy -D warnings),
#   4. cargo test for the whole workspace (unit, property, integration and doc tests),
#   5. no test secret in any log the tests produced (scripts/check-test-logs.sh),
#   6. fuzzing: scripts/fuzz.sh, LOGSHIP_FUZZ_SECONDS (default 60) per target; 0 skips it.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
# Each step prints the time so far and the disk space left: a full disk fails a build with
# errors that do not say so plainly.
free_space() { df -h --output=avail . 2>/dev/null | tail -n 1 | tr -d ' '; }
step() { echo "== test.sh: $* ($(( $(date +%s) - started ))s, $(free_space) free)"; }

# CI builds from scratch once: incremental caches would only add gigabytes to target/.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "system packages"
bash scripts/deps.sh

step "services"
# Take over servers a previous checkout on this machine left running, so outage tests stop
# servers this run owns.
export LOGSHIP_SERVICES_TAKEOVER="${LOGSHIP_SERVICES_TAKEOVER:-1}"
# Secure mode: also the test CA and the TLS + auth front of Elasticsearch (tests/security.rs).
export LOGSHIP_SECURE="${LOGSHIP_SECURE:-1}"
# Start the servers in the background while the code compiles; wait for them before testing.
services_log=$(mktemp)
bash scripts/services.sh up >"$services_log" 2>&1 &
services_pid=$!
cleanup() {
  if [ "${LOGSHIP_KEEP_SERVICES:-0}" != 1 ]; then bash scripts/services.sh down || true; fi
}
trap cleanup EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "build tests"
cargo test --workspace --no-run --quiet

step "waiting for services"
if ! wait "$services_pid"; then
  cat "$services_log"
  echo "test.sh: services did not start" >&2
  exit 1
fi
cat "$services_log"

step "warming up Kafka"
# Agents use idempotent producers. A freshly started single-node KRaft broker has been seen to
# hang its first producer-id allocation for a minute or more; let that happen here, bounded and
# non-fatal, rather than inside the first tests' time limits.
for attempt in 1 2 3 4; do
  if echo warmup | timeout -s KILL 45 kcat -b "${LOGSHIP_KAFKA:-127.0.0.1:9092}" \
      -X enable.idempotence=true -P -t _logship_warmup 2>/dev/null; then
    echo "kafka: idempotent produce ok (attempt $attempt)"
    break
  fi
  echo "kafka: idempotent produce not acknowledged yet (attempt $attempt)"
done

step "cargo test"
rm -rf target/test-logs
set +e
# Two test threads per binary: the integration tests each run agents or transfers that fsync,
# beside Kafka and Elasticsearch on the same two cores; more in parallel only adds stalls.
cargo test --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee target/test-output.log
status=${PIPESTATUS[0]}
set -e

step "secrets in test logs"
logs_failed=0
if ! bash scripts/check-test-logs.sh; then
  logs_failed=1
  status=1
fi

fuzz_seconds="${LOGSHIP_FUZZ_SECONDS:-60}"
fuzz_failed=0
if [ "$fuzz_seconds" != 0 ]; then
  step "fuzzing (${fuzz_seconds}s per target)"
  fuzz_started=$(date +%s)
  if ! FUZZ_SECONDS="$fuzz_seconds" bash scripts/fuzz.sh; then
    fuzz_failed=1
    status=1
  fi
  echo "fuzzing took $(( $(date +%s) - fuzz_started ))s"
fi

# A crashed fuzz run counts as one failed test in the summary.
grep -E '^test result:' target/test-output.log | awk -v fuzz_failed="$((fuzz_failed + logs_failed))" '
  { for (i = 2; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
  END { printf "tests: %d passed, %d failed, %d skipped\n", p, f + fuzz_failed, s }'
step "done (exit $status)"
exit "$status"
