#!/usr/bin/env bash
# Benchmarks of logship on the clusters of scripts/services.sh (docs/bench.md, "Clusters"):
#
#   scripts/bench-cluster.sh ship BIN [ROUNDS]  # the agent ships the 4 × 1M-line corpus, in
#       alternating rounds into the 3-broker cluster (replication factor 3, min.insync.replicas 2,
#       acks=all) and into one broker; services.sh switches the servers between runs
#   scripts/bench-cluster.sh xfer BIN [ROUNDS]  # on the clusters: 1, 2 and 3 transfers in one
#       group index a 400,000-line topic (4 partitions) into an index of 3 shards and 1 replica
#       on the 3 Elasticsearch nodes, until every document is searchable
#
# Prints wall and CPU seconds per run: of the logship processes, of the servers (the Kafka
# brokers for ship, the Elasticsearch nodes for xfer), and the machine's busy cores over the run
# (all from /proc). Needs the corpus of scripts/bench.sh (BENCH_DIR, default
# /var/tmp/logship-bench) and a release binary.
set -euo pipefail
mode=$1; bin_a=$2; rounds=${3:-2}
cd "$(dirname "$0")/.."
WORK=${BENCH_DIR:-/var/tmp/logship-bench}
corpus=$WORK/corpus-v1-4-1000000
[ -d "$corpus" ] || { echo "no corpus at $corpus: run scripts/bench.sh once" >&2; exit 1; }
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

# server_cpu PATTERN: user+sys seconds of every process whose command line matches PATTERN.
server_cpu() {
  local pid total=0
  for pid in $(pgrep -f "$1"); do
    total=$(awk -v t="$total" -v c="$(cpu_of "$pid" 2>/dev/null || echo 0)" 'BEGIN { printf "%.2f", t + c }')
  done
  echo "$total"
}
# busy_ticks: the machine's non-idle CPU ticks so far (all cores).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# measured CMD...: runs CMD (which prints "wall cpu"), prints "wall cpu server_cpu busy_cores"
# with SERVER the pattern of the servers' processes.
measured() {
  local s0 b0 w c s1 b1
  s0=$(server_cpu "$SERVER"); b0=$(busy_ticks)
  read -r w c < <("$@")
  s1=$(server_cpu "$SERVER"); b1=$(busy_ticks)
  echo "$w $c $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }') $(awk -v a="$b0" -v b="$b1" -v w="$w" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz / w }')"
}

cluster_up() { LOGSHIP_SECURE=0 LOGSHIP_CLUSTER=1 bash scripts/services.sh up >/dev/null; }
single_up() { LOGSHIP_SECURE=0 bash scripts/services.sh up >/dev/null; }
CLUSTER_BROKERS=127.0.0.1:9092,127.0.0.1:19092,127.0.0.1:29092
ES_NODES=(http://127.0.0.1:9200 http://127.0.0.1:9201 http://127.0.0.1:9202)

ship() {
  cat "$corpus"/*.log >/dev/null
  SERVER=kafka.Kafka
  echo "round  where    wall s  agent cpu s  brokers cpu s  busy cores"
  for i in $(seq 1 "$rounds"); do
    cluster_up
    BROKER=$CLUSTER_BROKERS
    echo "$i      cluster  $(measured run_ship "$bin_a")"
    single_up
    BROKER=127.0.0.1:9092
    echo "$i      single   $(measured run_ship "$bin_a")"
  done
  echo "(4,000,000 lines, 441 MB each run; lines/s = 4e6 / wall)"
}

# xfer_topic: 100,000 lines of each corpus file (four files: four keys) into a fresh topic.
xfer_topic() {
  make_topic "$CLUSTER_BROKERS" 100000 4
  echo "topic $XFER_TOPIC: end offsets $(for p in 0 1 2 3; do kcat -b "$CLUSTER_BROKERS" -Q -t "$XFER_TOPIC:$p:-1" 2>/dev/null | awk '{ printf "%s ", $NF }'; done)"
}

# run_group N → "wall cpu": N transfers in one group until the index holds every line.
run_group() {
  local n=$1 d run start i pids=() count=0 cpu=0
  d=$(mktemp -d /var/tmp/bc-xfer.XXXX); run="bc$(date +%s%N)"
  curl -s -XPUT "${ES_NODES[0]}/$run" -H 'Content-Type: application/json' \
    -d '{"settings":{"number_of_shards":3,"number_of_replicas":1}}' >/dev/null
  curl -s "${ES_NODES[0]}/_cluster/health/$run?wait_for_status=green&timeout=60s" >/dev/null
  start=$(now)
  for i in $(seq 1 "$n"); do
    printf '[kafka]\nbrokers = "%s"\ngroup = "%s"\ntopics = ["%s"]\n[elasticsearch]\nurl = "%s"\nindex = "%s"\nmanage_templates = false\n' \
      "$CLUSTER_BROKERS" "$run" "$XFER_TOPIC" "$(IFS=,; echo "${ES_NODES[*]}")" "$run" >"$d/transfer-$i.toml"
    "$bin_a" transfer --config "$d/transfer-$i.toml" 2>"$d/transfer-$i.log" & pids+=($!)
  done
  for _ in $(seq 1 1800); do
    count=$(curl -s "${ES_NODES[0]}/$run/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
    [ "${count:-0}" -ge 400000 ] && break
    sleep 0.1
  done
  local wall; wall=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
  for i in "${pids[@]}"; do cpu=$(awk -v a="$cpu" -v b="$(cpu_of "$i")" 'BEGIN { printf "%.2f", a + b }'); done
  echo "$wall $cpu"
  for i in "${pids[@]}"; do kill -TERM "$i"; done
  wait "${pids[@]}" || true
  curl -s -XDELETE "${ES_NODES[0]}/$run" >/dev/null; rm -rf "$d"
  [ "${count:-0}" -ge 400000 ] || { echo "only $count documents indexed" >&2; exit 1; }
}

xfer() {
  cluster_up
  xfer_topic
  SERVER=org.elasticsearch.bootstrap.Elasticsearch
  echo "round  transfers  wall s  transfers cpu s  nodes cpu s  busy cores  docs/s"
  for i in $(seq 1 "$rounds"); do
    for n in 1 2 3; do
      read -r w c s b < <(measured run_group "$n")
      echo "$i      $n          $w  $c  $s  $b  $(awk -v w="$w" 'BEGIN { printf "%.0f", 400000 / w }')"
    done
  done
}

case $mode in
  ship) ship ;;
  xfer) xfer ;;
  *) echo "usage: $0 ship|xfer BIN [ROUNDS]" >&2; exit 2 ;;
esac
