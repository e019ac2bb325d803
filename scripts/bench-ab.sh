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

now() { date +%s.%N; }
cpu_of() { # user+sys seconds of PID so far
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

run_ship() { # run_ship BIN → "wall cpu"
  local bin=$1 d port topic n=0 start cpu pid
  d=$(mktemp -d /var/tmp/ab-ship.XXXX); port=$((20000 + RANDOM % 20000))
  topic="bench-ab-$(date +%s%N)"
  printf 'host = "bench"\ndata_dir = "%s"\nmetrics_addr = "127.0.0.1:%s"\n[kafka]\nbrokers = "%s"\n[[collect]]\npath = "%s/*.log"\ntopic = "%s"\n' \
    "$d/data" "$port" "$BROKER" "$corpus" "$topic" >"$d/agent.toml"
  start=$(now)
  "$bin" agent --config "$d/agent.toml" 2>"$d/agent.log" & pid=$!
  for _ in $(seq 1 3000); do
    n=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "logship_kafka_delivered_lines_total" { printf "%.0f", $2 }')
    [ "${n:-0}" -ge 4000000 ] && break
    sleep 0.1
  done
  echo "$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }') $(cpu_of $pid)"
  kill -TERM $pid; wait $pid || true; rm -rf "$d"
  [ "${n:-0}" -ge 4000000 ] || { echo "only $n lines shipped" >&2; exit 1; }
}

XFER_TOPIC=""
make_xfer_topic() { # 200,000 lines of the corpus into a topic, once, with BIN_A's agent
  local d pid n=0
  d=$(mktemp -d /var/tmp/ab-src.XXXX); mkdir "$d/logs"
  head -n 200000 "$(ls "$corpus"/*.log | head -n 1)" >"$d/logs/a.log"
  XFER_TOPIC="bench-ab-src-$(date +%s%N)"
  printf 'host = "bench"\ndata_dir = "%s"\nmetrics_addr = "127.0.0.1:29998"\n[kafka]\nbrokers = "%s"\n[[collect]]\npath = "%s/logs/*.log"\ntopic = "%s"\n' \
    "$d/data" "$BROKER" "$d" "$XFER_TOPIC" >"$d/agent.toml"
  "$bin_a" agent --config "$d/agent.toml" 2>"$d/agent.log" & pid=$!
  for _ in $(seq 1 1200); do
    n=$(curl -s http://127.0.0.1:29998/metrics | awk '$1 == "logship_kafka_delivered_lines_total" { printf "%.0f", $2 }')
    [ "${n:-0}" -ge 200000 ] && break
    sleep 0.1
  done
  kill -TERM $pid; wait $pid || true; rm -rf "$d"
}

run_xfer() { # run_xfer BIN → "wall cpu"
  local bin=$1 d run n=0 start pid
  d=$(mktemp -d /var/tmp/ab-xfer.XXXX); run="ab$(date +%s%N)"
  printf '[kafka]\nbrokers = "%s"\ngroup = "%s"\ntopics = ["%s"]\n[elasticsearch]\nurl = "%s"\nindex = "%s"\nmanage_templates = false\n' \
    "$BROKER" "$run" "$XFER_TOPIC" "$ES" "$run" >"$d/transfer.toml"
  start=$(now)
  "$bin" transfer --config "$d/transfer.toml" 2>"$d/transfer.log" & pid=$!
  for _ in $(seq 1 1200); do
    n=$(curl -s "$ES/$run/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
    [ "${n:-0}" -ge 200000 ] && break
    sleep 0.1
  done
  echo "$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }') $(cpu_of $pid)"
  kill -TERM $pid; wait $pid || true
  curl -s -XDELETE "$ES/$run" >/dev/null; rm -rf "$d"
  [ "${n:-0}" -ge 200000 ] || { echo "only $n documents indexed" >&2; exit 1; }
}

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
