#!/usr/bin/env bash
# End-to-end agent benchmark: a pre-written file of ~100-byte access-log lines is shipped by the
# release `logship agent` into the local Kafka broker with durability on (WAL fsync per round,
# idempotent producer, acks=all). Measures wall time until the topic holds every line, lines/s,
# MB/s of source bytes, CPU seconds per GB (user+sys of the agent) and peak RSS.
#
#   BENCH_MB=1024 RUNS=3 scripts/bench-agent.sh
#
# Needs the services up (scripts/services.sh up). Prints one result line per run and a median.
set -euo pipefail
cd "$(dirname "$0")/.."

MB=${BENCH_MB:-1024}
RUNS=${RUNS:-3}
BROKER=${LOGSHIP_KAFKA:-127.0.0.1:9092}
work=${BENCH_DIR:-/tmp/logship-bench}
mkdir -p "$work/logs"

command -v /usr/bin/time >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
cargo build --release --quiet --bin logship

corpus="$work/corpus-${MB}MB.log"
if [ ! -f "$corpus" ]; then
  echo "bench: writing ${MB} MB corpus (seeded, deterministic)"
  awk -v target=$((MB * 1024 * 1024)) 'BEGIN {
    srand(42); n = 0; size = 0
    while (size < target) {
      line = sprintf("10.%d.%d.%d - - [23/Nov/2026:10:%02d:%02d +0000] \"GET /api/v1/items/%d HTTP/1.1\" %d %d", \
        int(rand()*256), int(rand()*256), int(rand()*256), int(rand()*60), int(rand()*60), int(rand()*100000), \
        (rand() < 0.95 ? 200 : 404), int(rand()*5000))
      print line; size += length(line) + 1; n++
    }
  }' >"$corpus"
fi
bytes=$(stat -c %s "$corpus")
lines=$(wc -l <"$corpus")
echo "bench: corpus $corpus: $lines lines, $bytes bytes"

topic_end() { # sum of the end offsets of every partition of $1
  kcat -b "$BROKER" -Q -t "$1:0:-1" -t "$1:1:-1" -t "$1:2:-1" -t "$1:3:-1" 2>/dev/null \
    | awk '{ for (i = 1; i <= NF; i++) if ($i == "offset") s += $(i+1) } END { print s + 0 }'
}

results=()
for run in $(seq 1 "$RUNS"); do
  topic="bench-agent-$(date +%s)-$run"
  rm -rf "$work/data" "$work/logs"/*
  ln "$corpus" "$work/logs/access.log" 2>/dev/null || cp "$corpus" "$work/logs/access.log"
  cat >"$work/agent.toml" <<CONF
host = "bench"
data_dir = "$work/data"
[kafka]
brokers = "$BROKER"
[[collect]]
path = "$work/logs/*.log"
topic = "$topic"
CONF
  start=$(date +%s.%N)
  /usr/bin/time -f "%U %S %M" -o "$work/time.txt" target/release/logship agent --config "$work/agent.toml" 2>"$work/agent.log" &
  pid=$!
  while :; do
    sleep 0.5
    got=$(topic_end "$topic")
    [ "$got" -ge "$lines" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "bench: agent died"; tail "$work/agent.log"; exit 1; }
  done
  end=$(date +%s.%N)
  kill -TERM "$(pgrep -P "$pid" logship || echo "$pid")" 2>/dev/null || true
  wait "$pid" || true
  read -r user sys rss_kb <"$work/time.txt"
  line=$(awk -v s="$start" -v e="$end" -v l="$lines" -v b="$bytes" -v u="$user" -v y="$sys" -v r="$rss_kb" 'BEGIN {
    t = e - s; printf "%.0f %.1f %.1f %.1f %.2f", l / t, b / t / 1e6, (u + y) / (b / 1e9), r / 1024, t }')
  echo "run $run: lines/s MB/s cpu-s/GB peak-RSS-MiB seconds = $line"
  results+=("$line")
done
printf '%s\n' "${results[@]}" | sort -n -k1 | awk -v n="$RUNS" 'NR == int((n + 1) / 2) {
  printf "median: %s lines/s, %s MB/s, %s CPU-s/GB, %s MiB peak RSS, %s s\n", $1, $2, $3, $4, $5 }'
