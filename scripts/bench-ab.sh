#!/usr/bin/env bash
# Before/after comparison of two logship binaries, in alternating pairs (A B A B ...: the
# machine drifts, so only pairs are compared), on the cached corpus of scripts/bench.sh:
#
#   scripts/bench-ab.sh ship  BIN_A BIN_B [PAIRS]   # the agent ships the 4 × 1M-line corpus into a
#                                                   # fresh topic, until Kafka acknowledged every line
#   scripts/bench-ab.sh xfer  BIN_A BIN_B [PAIRS]   # the transfer indexes a 200,000-line topic into
#                                                   # a fresh index, until every document is searchable
#
# Build BIN_B from the older commit with `git worktree add /tmp/old COMMIT` and
# `CARGO_TARGET_DIR=/var/tmp/target-old cargo build --release --bin logship` there.
# Prints each run's wall seconds and CPU seconds (the logship process, from /proc) and the
# median of the pairs' ratios A/B. Needs the services up and the corpus made by
# scripts/bench.sh (BENCH_DIR, default /var/tmp/logship-bench).
set -euo pipefail
mode=$1; bin_a=$2; bin_b=$3; pairs=${4:-6}
WORK=${BENCH_DIR:-/var/tmp/logship-bench}
corpus=$WORK/corpus-v1-4-1000000
BROKER=${LOGSHIP_KAFKA:-127.0.0.1:9092}
ES=${LOGSHIP_ES:-http://127.0.0.1:9200}
[ -d "$corpus" ] || { echo "no corpus at $corpus: run scripts/bench.sh once" >&2; exit 1; }

# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"

case $mode in
  ship) cat "$corpus"/*.log >/dev/null; runner=run_ship ;;
  xfer) make_xfer_topic; runner=run_xfer ;;
  *) echo "usage: $0 ship|xfer BIN_A BIN_B [PAIRS]" >&2; exit 2 ;;
esac
$runner "$bin_a" >/dev/null; $runner "$bin_b" >/dev/null # warm-up, not counted
ratios=()
echo "pair  A wall  A cpu  B wall  B cpu  A/B wall  A/B cpu"
for i in $(seq 1 "$pairs"); do
  read -r aw ac < <($runner "$bin_a")
  read -r bw bc < <($runner "$bin_b")
  rw=$(awk -v a="$aw" -v b="$bw" 'BEGIN { printf "%.3f", a / b }')
  rc=$(awk -v a="$ac" -v b="$bc" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$rw $rc")
  echo "$i     $aw    $ac   $bw    $bc   $rw     $rc"
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median A/B wall: $(printf '%s\n' "${ratios[@]}" | awk '{ print $1 }' | median)"
echo "median A/B cpu:  $(printf '%s\n' "${ratios[@]}" | awk '{ print $2 }' | median)"
