# shellcheck shell=bash
# Runs shared by scripts/bench-ab.sh and scripts/bench-cluster.sh: the agent shipping the cached
# corpus (scripts/bench.sh makes it) and the transfer indexing a topic, timed (wall seconds, and
# CPU seconds of the logship process from /proc). Sourced; the caller sets corpus, BROKER, ES and
# bin_a (the binary that fills the transfer's topic).

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
    # Not listening yet: curl fails, which must not end the script (errexit, pipefail).
    n=$({ curl -s "http://127.0.0.1:$port/metrics" || true; } | awk '$1 == "logship_kafka_delivered_lines_total" { printf "%.0f", $2 }')
    [ "${n:-0}" -ge 4000000 ] && break
    sleep 0.1
  done
  echo "$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }') $(cpu_of $pid)"
  kill -TERM $pid; wait $pid || true; rm -rf "$d"
  [ "${n:-0}" -ge 4000000 ] || { echo "only $n lines shipped" >&2; exit 1; }
}

XFER_TOPIC=""
# make_topic BROKERS LINES FILES: LINES lines of each of the first FILES corpus files (one key
# each) shipped by bin_a's agent into a fresh topic, named in XFER_TOPIC.
make_topic() {
  local brokers=$1 lines=$2 files=$3 d pid n=0 f total
  d=$(mktemp -d /var/tmp/ab-src.XXXX); mkdir "$d/logs"
  for f in $(ls "$corpus"/*.log | head -n "$files"); do head -n "$lines" "$f" >"$d/logs/$(basename "$f")"; done
  total=$((lines * files))
  XFER_TOPIC="bench-src-$(date +%s%N)"
  printf 'host = "bench"\ndata_dir = "%s"\nmetrics_addr = "127.0.0.1:29998"\n[kafka]\nbrokers = "%s"\n[[collect]]\npath = "%s/logs/*.log"\ntopic = "%s"\n' \
    "$d/data" "$brokers" "$d" "$XFER_TOPIC" >"$d/agent.toml"
  "$bin_a" agent --config "$d/agent.toml" 2>"$d/agent.log" & pid=$!
  for _ in $(seq 1 1800); do
    n=$({ curl -s http://127.0.0.1:29998/metrics || true; } | awk '$1 == "logship_kafka_delivered_lines_total" { printf "%.0f", $2 }')
    [ "${n:-0}" -ge "$total" ] && break
    sleep 0.1
  done
  kill -TERM $pid; wait $pid || true; rm -rf "$d"
  [ "${n:-0}" -ge "$total" ] || { echo "only $n of $total lines in the topic" >&2; exit 1; }
}
# make_xfer_topic: the 200,000 lines bench-ab.sh's transfer runs index.
make_xfer_topic() { make_topic "$BROKER" 200000 1; }

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

