#!/usr/bin/env bash
# Runs every test of logship against real servers on loopback:
#   1. system packages (scripts/deps.sh),
#   2. Kafka, Elasticsearch, etcd and InfluxDB (scripts/services.sh up; stopped again on exit),
#      after the script test of switching them between plain and secure mode
#      (tests/scripts/services_modes.sh),
#   3. formatting and lint gates (cargo fmt --check, cargo clippy -D warnings),
#   4. the demo left running, searched and stopped (tests/scripts/demo_stays_alive.sh),
#      then cargo test for the whole workspace (unit, property, integration and doc tests),
#   5. no test secret in any log the tests produced (scripts/check-test-logs.sh),
#   6. the cluster phase: three-member Kafka, Elasticsearch and etcd replace the single nodes
#      (LOGSHIP_CLUSTER=1 scripts/services.sh up) and tests/cluster.rs kills members under load;
#      LOGSHIP_CLUSTER_FULL=1 also runs its `full_` tests; LOGSHIP_CLUSTER_TESTS=0 skips the phase,
#   7. fuzzing: scripts/fuzz.sh, LOGSHIP_FUZZ_SECONDS (default 60) per target; 0 skips it.
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
# First the script test of modes (plain, secure, plain again), then up in the mode asked for.
mkdir -p target
script_results=target/script-tests.log
: >"$script_results"
services_log=$(mktemp)
(
  LOGSHIP_SECURE=0 bash tests/scripts/services_modes.sh >"$services_log.modes" 2>&1
  modes=$?
  bash scripts/services.sh up >"$services_log" 2>&1 || exit 100
  exit "$modes"
) &
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
set +e
wait "$services_pid"
services_rc=$?
set -e
cat "$services_log.modes"
grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed$' "$services_log.modes" >>"$script_results" || true
if [ "$services_rc" = 100 ]; then
  cat "$services_log"
  echo "test.sh: services did not start" >&2
  exit 1
fi
cat "$services_log"
if [ "$services_rc" != 0 ] && ! grep -q '^services_modes: ' "$script_results"; then
  echo "services_modes: 0 passed, 1 failed" >>"$script_results"
fi

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

step "the demo, left running, then stopped (tests/scripts/demo_stays_alive.sh)"
rm -rf target/test-logs
if ! bash tests/scripts/demo_stays_alive.sh 2>&1 | tee target/demo-test.log; then
  grep -q '^demo_stays_alive: ' target/demo-test.log || echo "demo_stays_alive: 0 passed, 1 failed" >>"$script_results"
fi
grep -E '^demo_stays_alive: [0-9]+ passed, [0-9]+ failed$' target/demo-test.log >>"$script_results" || true

step "cargo test"
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

: >target/cluster-output.log
if [ "${LOGSHIP_CLUSTER_TESTS:-1}" != 0 ]; then
  step "cluster phase: three brokers, three Elasticsearch nodes, three etcd members"
  set +e
  (
    set -e
    export LOGSHIP_SECURE=0 LOGSHIP_CLUSTER=1
    bash scripts/services.sh up
    eval "$(bash scripts/services.sh env)"
    skip=(--skip full_)
    if [ "${LOGSHIP_CLUSTER_FULL:-0}" = 1 ]; then skip=(); fi
    cargo test --test cluster -- --ignored --test-threads=1 "${skip[@]}"
  ) 2>&1 | tee target/cluster-output.log
  cluster_status=${PIPESTATUS[0]}
  set -e
  if [ "$cluster_status" != 0 ]; then
    status=1
    grep -q '^test result:' target/cluster-output.log || echo "cluster_phase: 0 passed, 1 failed" >>"$script_results"
  fi
  # The clusters stay up until the end (the exit trap stops every server this run started).
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
# Script tests (tests/scripts/) close with "NAME: N passed, N failed"; their checks count too.
if grep -qE ' [1-9][0-9]* failed$' "$script_results"; then status=1; fi
# The cluster tests are ignored in the single-node run and run in the cluster phase: what ran
# there is not counted as skipped.
{ grep -E '^test result:' target/test-output.log; sed 's/^[a-z_]*:/script result:/' "$script_results";
  grep -E '^test result:' target/cluster-output.log | sed 's/^test result:/cluster result:/'; } \
  | awk -v fuzz_failed="$((fuzz_failed + logs_failed))" '
  { for (i = 2; i <= NF; i++) { if ($(i) ~ /^passed;?,?$/) p += $(i-1); if ($(i) ~ /^failed;?,?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) }
    if ($1 == "cluster") for (i = 2; i <= NF; i++) if ($(i) ~ /^(passed|failed);?,?$/) ran += $(i-1) }
  END { printf "tests: %d passed, %d failed, %d skipped\n", p, f + fuzz_failed, s - ran }'
step "done (exit $status)"
exit "$status"
