#!/usr/bin/env bash
# Side-by-side benchmark (issue 9), in one run, on this machine:
#
#  1. corpus: FILES files × BENCH_LINES seeded access-log lines (~110 B; 1 line in 1000 is
#     2–8 KiB), written once and cached under BENCH_DIR;
#  2. ship:   the release `logship agent` (defaults: WAL fsync per round, idempotent producer,
#     acks=all, lz4) and a private `rsyslogd` (imfile with state files → omkafka with acks=all,
#     idempotence, lz4, behind a disk-assisted action queue) each ship the corpus into a fresh
#     topic of the local broker, alternating, RUNS times each. Wall time runs from the
#     shipper's start until the topic's end offsets sum to the corpus' line count;
#  3. transfer: the release `logship transfer` indexes a pre-filled topic (BENCH_XFER_DOCS agent
#     records) into a fresh index, against `curl` posting the same documents as NDJSON `_bulk`
#     `create` bodies (same batch size and parallelism) into a fresh index with the same
#     mapping, alternating, RUNS times each;
#  4. latency: agent + transfer running, BENCH_LAT_RATE lines/s appended for BENCH_LAT_SECONDS;
#     p50/p99 from write to searchable (scripts/bench-latency.py);
#  5. multiline, parse (only when named in BENCH_PARTS): the agent on a Java stack-trace corpus
#     (FILES × BENCH_MULTI_LINES lines) with and without `multiline = "java"`; the transfer on
#     BENCH_XFER_DOCS JSON lines with and without `[[parse]] format = "json"`; alternating;
#  6. console (only when named in BENCH_PARTS): an index of BENCH_CONSOLE_LINES lines (5,000,000)
#     shipped by the agent and the transfer (kept between runs), then scripts/bench-console.py
#     against the release `logship console`: search overhead, context, memory under 50
#     concurrent searches, Elasticsearch searches of 100 tail clients, page load in Chromium;
#  7. prints the tables (medians) and, unless BENCH_DOC=0, rewrites the marked sections of
#     docs/bench.md.
#
#   scripts/bench.sh                                   # full: 4 × 1M lines, RUNS=3
#   BENCH_LINES=50000 RUNS=1 BENCH_DOC=0 scripts/bench.sh   # quick check
#   BENCH_PARTS=console scripts/bench.sh               # the console's figures
#
# Environment: BENCH_LINES (1000000), BENCH_FILES (4), RUNS (3), BENCH_DIR
# (/var/tmp/logship-bench), BENCH_PARTS ("ship transfer latency"; add "console"),
# BENCH_CONSOLE_LINES (5000000), BENCH_CONSOLE_ADDR (127.0.0.1:19700), BENCH_XFER_DOCS (200000),
# BENCH_AGENT_EXTRA (top-level agent config lines, e.g. "wal_max_bytes = 33554432"),
# BENCH_AGENT_KAFKA_EXTRA (lines of its [kafka] table, e.g. "max_lines_per_record = 1"),
# BENCH_XFER_BATCH (2000), BENCH_XFER_PARALLEL (4), BENCH_LAT_RATE (1000), BENCH_LAT_SECONDS
# (30), BENCH_DOC (1), BENCH_NOTE (a remark printed with the results, e.g. "preliminary, machine
# shared"), LOGSHIP_KAFKA, LOGSHIP_ES. Needs the services up (scripts/services.sh up), kcat,
# curl, jq, python3; installs rsyslog + rsyslog-kafka with apt-get if missing (never starting
# the system's rsyslog). Topics are named bench-* and are not deleted (Kafka has no deletion in
# kcat); indices are deleted after each measurement.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
REPO=$(pwd -P)

LINES=${BENCH_LINES:-1000000}
FILES=${BENCH_FILES:-4}
RUNS=${RUNS:-3}
WORK=${BENCH_DIR:-/var/tmp/logship-bench}
PARTS=${BENCH_PARTS:-ship transfer latency}
SHIPPERS=${BENCH_SHIPPERS:-logship rsyslog}
XFER_DOCS=${BENCH_XFER_DOCS:-200000}
CONSOLE_LINES=${BENCH_CONSOLE_LINES:-5000000}
CONSOLE_ADDR=${BENCH_CONSOLE_ADDR:-127.0.0.1:19700}
XFER_BATCH=${BENCH_XFER_BATCH:-2000}
XFER_PARALLEL=${BENCH_XFER_PARALLEL:-4}
LAT_RATE=${BENCH_LAT_RATE:-1000}
LAT_SECONDS=${BENCH_LAT_SECONDS:-30}
WRITE_DOC=${BENCH_DOC:-1}
NOTE=${BENCH_NOTE:-}
BROKER=${LOGSHIP_KAFKA:-127.0.0.1:9092}
ES=${LOGSHIP_ES:-http://127.0.0.1:9200}
ES=${ES%/}
AGENT_METRICS=${BENCH_AGENT_METRICS:-127.0.0.1:19651} # the agent's Prometheus endpoint
STALL=${BENCH_STALL_SECONDS:-180} # give up when a count makes no progress for this long
CORPUS_VERSION=1                  # bump when the generator changes
TCK=$(getconf CLK_TCK)
STAMP=$(date +%s)

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
has_part() { case " $PARTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# ------------------------------------------------------------------------ prerequisites

need_apt=()
for tool in kcat curl jq python3; do command -v "$tool" >/dev/null || need_apt+=("$tool"); done
[ -x /usr/sbin/rsyslogd ] || need_apt+=(rsyslog)
compgen -G "/usr/lib/*/rsyslog/omkafka.so" >/dev/null || need_apt+=(rsyslog-kafka)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "installing ${need_apt[*]}"
  # Installing rsyslog must not start the system's daemon: deny service starts meanwhile.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  [ -z "$guard" ] || rm -f "$guard"
fi

for _ in $(seq 1 30); do # up to a minute: a test run beside us may be restarting them
  kcat -b "$BROKER" -L -t _bench_probe >/dev/null 2>&1 && curl -sf "$ES" >/dev/null && break
  sleep 2
done
kcat -b "$BROKER" -L -t _bench_probe >/dev/null 2>&1 || die "Kafka at $BROKER is not answering (scripts/services.sh up)"
curl -sf "$ES" >/dev/null || die "Elasticsearch at $ES is not answering (scripts/services.sh up)"

say "building the release binary"
nice -n 10 cargo build --release --quiet --bin logship
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/logship"
[ -x "$BIN" ] || die "no binary at $BIN"

RUN="$WORK/run"
rm -rf "$RUN"
mkdir -p "$RUN"
started=() # pids of the processes this script started
cleanup() {
  local pid
  for pid in "${started[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# ------------------------------------------------------------------------ helpers

now() { date +%s.%N; }
cpu_seconds() { # user+sys CPU seconds of process $1 (all its threads)
  awk -v t="$TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
broker_pid() {
  ss -Hltnp "sport = :${BROKER##*:}" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2
}

declare -A partitions_of
topic_create() { # auto-creates topic $1 through a metadata request; waits for its leaders
  local _ meta
  for _ in $(seq 1 100); do
    meta=$(kcat -b "$BROKER" -L -t "$1" -J 2>/dev/null || true)
    if jq -e '.topics[0] | (.error == null) and (.partitions | length > 0) and all(.partitions[]; .leader >= 0)' \
      <<<"$meta" >/dev/null 2>&1; then
      partitions_of[$1]=$(jq '.topics[0].partitions | length' <<<"$meta")
      return 0
    fi
    sleep 0.2
  done
  die "topic $1 was not created"
}
topic_end() { # sum of the end offsets of every partition of topic $1 (made by topic_create)
  local args=() p
  for p in $(seq 0 $((partitions_of[$1] - 1))); do args+=(-t "$1:$p:-1"); done
  { kcat -b "$BROKER" -Q "${args[@]}" 2>/dev/null || true; } \
    | awk '{ for (i = 1; i <= NF; i++) if ($i == "offset") s += $(i + 1) } END { print s + 0 }'
}
# Lines the agent on AGENT_METRICS has had acknowledged by Kafka (acks=all: on every in-sync
# replica). An agent record carries several lines, so the topic's offsets do not count lines.
agent_acked() {
  { curl -s "http://$AGENT_METRICS/metrics" || true; } \
    | awk '$1 == "logship_kafka_delivered_lines_total" { printf "%.0f", $2; n = 1 } END { if (!n) print 0 }'
}
# Lines held by topic $1, read back from its beginning (NDJSON records split into lines).
topic_lines() { kcat -b "$BROKER" -C -t "$1" -o beginning -e -q -f '%s\n' 2>/dev/null | wc -l; }
es_count() { { curl -s "$ES/$1/_count" || true; } | jq '.count // 0' 2>/dev/null || echo 0; }
es_delete() { curl -s -o /dev/null -X DELETE "$ES/$1" || true; }

# wait_count KIND NAME TARGET PID: polls every 0.2 s until the count of KIND NAME reaches
# TARGET: KIND topic (end offsets), acked (the agent's acknowledged lines, NAME unused) or index
# (`_count`). Fails if PID (when not empty) exits or the count stalls for STALL seconds.
# Prints "<first seen> <count then> <done> <count at done>". On a stall it dies, unless
# ALLOW_SHORT=1: then <done> is the time of the last progress and the count is short.
wait_count() {
  local kind=$1 name=$2 target=$3 pid=$4 got=0 last=-1 progress first="" first_count=0 t last_t
  progress=$(date +%s)
  last_t=$(now)
  while :; do
    case $kind in
      topic) got=$(topic_end "$name") ;;
      acked) got=$(agent_acked) ;;
      *) got=$(es_count "$name") ;;
    esac
    [[ "$got" =~ ^[0-9]+$ ]] || got=0 # a failed query (the machine is busy): poll again
    t=$(now)
    if [ -z "$first" ] && [ "$got" -gt 0 ]; then first=$t first_count=$got; fi
    [ "$got" -ge "$target" ] && break
    if [ "$got" != "$last" ]; then last=$got progress=$(date +%s) last_t=$t; fi
    if [ $(($(date +%s) - progress)) -ge "$STALL" ]; then
      [ "${ALLOW_SHORT:-0}" = 1 ] || die "$kind $name stalled at $got of $target"
      say "$kind $name stalled at $got of $target; counted up to its last progress"
      echo "$first $first_count $last_t $got"
      return 0
    fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then die "process $pid exited ($kind $name at $got of $target)"; fi
    sleep 0.2
  done
  echo "$first $first_count $t $got"
}

forget() { # drops pid $1 from `started` once it has been waited for (its number may be reused)
  local keep=() pid
  for pid in "${started[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  started=("${keep[@]}")
}
stop() { # TERM process $1 (started by this script) and wait for it
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
}

fmt_int() { printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
median() { # median of the numbers on stdin
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ------------------------------------------------------------------------ corpus

CORPUS="$WORK/corpus-v$CORPUS_VERSION-$FILES-$LINES"
if [ ! -f "$CORPUS/.complete" ]; then
  say "writing the corpus: $FILES files × $LINES lines (seeded) into $CORPUS"
  rm -rf "$CORPUS"
  mkdir -p "$CORPUS"
  for f in $(seq 1 "$FILES"); do
    # A fixed day, 47 lines per second; field values drawn from a seeded generator. 1 line in
    # 1000 carries a 2–8 KiB query string (a long line among the ~110-byte ones).
    awk -v seed=$((41 + f)) -v file="$f" -v lines="$LINES" 'BEGIN {
      srand(seed)
      split("GET GET GET GET GET GET GET POST POST PUT DELETE HEAD", methods, " ")
      split("200 200 200 200 200 200 200 200 200 200 200 200 201 204 301 304 304 400 403 404 404 500 502", codes, " ")
      split("curl/8.5.0|Go-http-client/1.1|python-requests/2.31|okhttp/4.12.0|Mozilla/5.0|kube-probe/1.29", agents, "|")
      split("/api/v1/items/%d|/api/v1/users/%d/orders|/static/js/app.%x.js|/healthz|/api/v2/search?q=item%d|/login|/img/p/%d.jpg", paths, "|")
      alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%&=-_"
      pool = ""
      for (i = 0; i < 8192; i++) pool = pool substr(alphabet, int(rand() * 66) + 1, 1)
      for (n = 0; n < lines; n++) {
        s = int(n / 47)
        path = sprintf(paths[int(rand() * 7) + 1], int(rand() * 100000))
        if (rand() < 0.001) {
          len = 2048 + int(rand() * 6144)
          path = path "?data=" substr(pool, 1 + int(rand() * (8192 - len)), len)
        }
        printf "10.%d.%d.%d - - [23/Nov/2026:%02d:%02d:%02d +0000] \"%s %s HTTP/1.1\" %s %d \"-\" \"%s\"\n",
          file, int(rand() * 256), int(rand() * 256), int(s / 3600) % 24, int(s / 60) % 60, s % 60,
          methods[int(rand() * 12) + 1], path, codes[int(rand() * 23) + 1], int(rand() * 20000),
          agents[int(rand() * 6) + 1]
      }
    }' >"$CORPUS/access-$f.log"
  done
  touch "$CORPUS/.complete"
fi
CORPUS_BYTES=$(cat "$CORPUS"/*.log | wc -c)
CORPUS_LINES=$((FILES * LINES))
CORPUS_LONG=$(cat "$CORPUS"/*.log | awk 'length > 2047' | wc -l)
# Both shippers read the corpus from the page cache, never from the disk.
cat "$CORPUS"/*.log >/dev/null
say "corpus: $CORPUS_LINES lines ($CORPUS_LONG of 2–8 KiB), $CORPUS_BYTES bytes"

# ------------------------------------------------------------------------ shipping

agent_config() { # agent_config FILE DATA_DIR GLOB TOPIC
  cat >"$1" <<CONF
host = "bench"
data_dir = "$2"
metrics_addr = "$AGENT_METRICS"
${BENCH_AGENT_EXTRA:-}
[kafka]
brokers = "$BROKER"
${BENCH_AGENT_KAFKA_EXTRA:-}
[[collect]]
path = "$3"
topic = "$4"
CONF
}

rsyslog_config() { # rsyslog_config FILE WORKDIR GLOB TOPIC
  cat >"$1" <<CONF
# Private instance for scripts/bench.sh: no system inputs, its own work directory.
global(workDirectory="$2" maxMessageSize="64k")
module(load="imfile")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="bench") {
  # acks=all + idempotence + lz4 as the agent; a disk-assisted queue (in memory, spilling to
  # WORKDIR when full, saved on shutdown); retried without limit when Kafka is away.
  action(type="omkafka" name="kafka" broker=["$BROKER"] topic="$4" template="raw"
         partitions.auto="on"
         confParam=["acks=all", "enable.idempotence=true", "compression.codec=lz4"]
         queue.type="LinkedList" queue.filename="kafka-queue" queue.saveOnShutdown="on"
         queue.maxDiskSpace="2g" action.resumeRetryCount="-1")
}
# State files in workDirectory, persisted every 10000 lines; new files read from the start.
input(type="imfile" file="$3" tag="bench" ruleset="bench" freshStartTail="off"
      persistStateInterval="10000")
CONF
}

# ship TOOL RUN: ships the corpus with TOOL (logship|rsyslog) into a fresh topic and sets RESULT
# to "lines/s MB/s cpu-s/GB peak-RSS-MiB wall-s broker-cpu-s/GB". (Runs in this shell, not in a
# command substitution, so that `started` keeps its pid for the exit trap.)
ship() {
  local tool=$1 run=$2 topic pid dir cpu rss bpid b0 b1 t0 done_at
  topic="bench-$tool-$STAMP-$run"
  dir="$RUN/$tool-$run"
  mkdir -p "$dir"
  topic_create "$topic"
  # Every run starts with no dirty pages: the previous run's ~1 GB of Kafka and WAL writes
  # would otherwise be written back during this one (runs drifted slower one after another).
  sync
  bpid=$(broker_pid || true)
  b0=$(if [ -n "$bpid" ]; then cpu_seconds "$bpid"; else echo 0; fi)
  t0=$(now)
  if [ "$tool" = logship ]; then
    agent_config "$dir/agent.toml" "$dir/data" "$CORPUS/*.log" "$topic"
    "$BIN" agent --config "$dir/agent.toml" 2>"$dir/agent.log" &
  else
    mkdir -p "$dir/work"
    rsyslog_config "$dir/rsyslog.conf" "$dir/work" "$CORPUS/*.log" "$topic"
    /usr/sbin/rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" >"$dir/rsyslog.log" 2>&1 &
  fi
  pid=$!
  started+=("$pid")
  # logship must deliver every line (a stall is a failure); another shipper that stops short
  # is measured up to its last progress and reported as short.
  local allow_short=1 waited delivered
  [ "$tool" != logship ] || allow_short=0
  if [ "$tool" = logship ]; then
    waited=$(wait_count acked - "$CORPUS_LINES" "$pid")
  else
    waited=$(ALLOW_SHORT=$allow_short wait_count topic "$topic" "$CORPUS_LINES" "$pid")
  fi
  done_at=$(awk '{ print $3 }' <<<"$waited")
  delivered=$(awk '{ print $4 }' <<<"$waited")
  if [ "$delivered" -lt "$CORPUS_LINES" ]; then
    short_runs+=("$tool run $run delivered $(fmt_int "$delivered") of $(fmt_int "$CORPUS_LINES") lines (no progress for ${STALL} s; measured up to its last progress)")
  fi
  cpu=$(cpu_seconds "$pid")
  rss=$(peak_rss_kib "$pid")
  # The broker's CPU over the run, unless it was restarted meanwhile (then not known: nan).
  b1=$(if [ -n "$bpid" ] && [ -e "/proc/$bpid" ]; then cpu_seconds "$bpid"; else echo nan; fi)
  stop "$pid"
  rm -rf "$dir/data" "$dir/work"
  if [ "$tool" = logship ]; then
    # Not trusting the agent's own count: the topic, read back, must hold every line.
    local held
    held=$(topic_lines "$topic")
    [ "$held" -ge "$CORPUS_LINES" ] || die "topic $topic holds $held lines of $CORPUS_LINES after the agent counted them acknowledged"
    [ "$held" -eq "$CORPUS_LINES" ] || say "topic $topic holds $held lines: $((held - CORPUS_LINES)) resent (same ids)"
  fi
  RESULT=$(awk -v s="$t0" -v e="$done_at" -v l="$delivered" -v b="$(awk -v b="$CORPUS_BYTES" -v d="$delivered" -v l="$CORPUS_LINES" 'BEGIN { printf "%.0f", b * d / l }')" -v c="$cpu" -v r="$rss" \
    -v b0="$b0" -v b1="$b1" 'BEGIN { t = e - s
    printf "%.0f %.1f %.1f %.1f %.2f %s\n", l / t, b / t / 1e6, c / (b / 1e9), r / 1024, t, (b1 == "nan" ? "nan" : sprintf("%.1f", (b1 - b0) / (b / 1e9))) }')
}

ship_logship=()
ship_rsyslog=()
short_runs=()
if has_part ship; then
  for run in $(seq 1 "$RUNS"); do
    for tool in $SHIPPERS; do
      ship "$tool" "$run"
      say "ship run $run $tool: lines/s MB/s CPU-s/GB RSS-MiB wall-s broker-CPU-s/GB = $RESULT"
      if [ "$tool" = logship ]; then ship_logship+=("$RESULT"); else ship_rsyslog+=("$RESULT"); fi
    done
  done
fi

# ------------------------------------------------------------------------ transfer

transfer_config() { # transfer_config FILE GROUP TOPIC INDEX DLQ
  cat >"$1" <<CONF
[kafka]
brokers = "$BROKER"
group = "$2"
topics = ["$3"]
[elasticsearch]
url = "$ES"
index = "$4"
dlq_index = "$5"
[batch]
max_docs = $XFER_BATCH
max_inflight_bulks = $XFER_PARALLEL
CONF
}

# prefill_topic NAME GLOB TOPIC LINES: creates TOPIC and ships the files of GLOB into it with
# the release agent (config, data and log under $RUN/NAME-agent*), until Kafka acknowledged LINES.
prefill_topic() {
  topic_create "$3"
  agent_config "$RUN/$1-agent.toml" "$RUN/$1-agent-data" "$2" "$3"
  "$BIN" agent --config "$RUN/$1-agent.toml" 2>"$RUN/$1-agent.log" &
  local pid=$!
  started+=("$pid")
  wait_count acked - "$4" "$pid" >/dev/null
  stop "$pid"
}

# measure_index INDEX PID: waits until INDEX holds XFER_DOCS documents; prints "docs/s over the
# whole run, docs/s from the first visible document, wall-s" given the start time $t0.
measure_index() {
  wait_count index "$1" "$XFER_DOCS" "$2" | awk -v s="$t0" -v n="$XFER_DOCS" '{
    printf "%.0f %.0f %.2f", n / ($3 - s), ($3 > $1 ? (n - $2) / ($3 - $1) : n / ($3 - s)), $3 - s }'
}

xfer_logship=()
xfer_curl=()
if has_part transfer; then
  # The pre-filled topic: the first XFER_DOCS corpus lines, shipped by the agent (real records).
  xsrc="bench-xfer-src-$STAMP"
  mkdir -p "$RUN/xfer-logs"
  [ "$XFER_DOCS" -le "$CORPUS_LINES" ] || XFER_DOCS=$CORPUS_LINES
  awk -v n="$XFER_DOCS" 'NR > n { exit } { print }' "$CORPUS"/*.log >"$RUN/xfer-logs/access.log"
  prefill_topic xfer "$RUN/xfer-logs/*.log" "$xsrc" "$XFER_DOCS"
  # The reference's bodies: the documents the transfer makes (the record without `id`, plus
  # `topic`), `create` with the record's id, XFER_BATCH per body.
  mkdir -p "$RUN/bulk"
  kcat -b "$BROKER" -C -t "$xsrc" -o beginning -e -q -f '%s\n' \
    | jq -c --arg index bench-xfer-c --arg topic "$xsrc" \
      '{create: {_index: $index, _id: .id}}, (del(.id) + {topic: $topic})' \
    | split -l $((2 * XFER_BATCH)) -a 5 - "$RUN/bulk/body-"
  [ "$(cat "$RUN"/bulk/body-* | wc -l)" -eq $((2 * XFER_DOCS)) ] || die "bulk bodies are incomplete"
  mapping=""
  for run in $(seq 1 "$RUNS"); do
    es_delete bench-xfer-t
    transfer_config "$RUN/transfer-$run.toml" "bench-xfer-$STAMP-$run" "$xsrc" bench-xfer-t bench-xfer-dlq
    t0=$(now)
    "$BIN" transfer --config "$RUN/transfer-$run.toml" 2>"$RUN/transfer-$run.log" &
    pid=$!
    started+=("$pid")
    result=$(measure_index bench-xfer-t "$pid")
    result="$result $(cpu_seconds "$pid") $(awk -v r="$(peak_rss_kib "$pid")" 'BEGIN { printf "%.1f", r / 1024 }')"
    stop "$pid"
    say "transfer run $run logship: docs/s docs/s-steady wall-s CPU-s RSS-MiB = $result"
    xfer_logship+=("$result")
    # The reference index gets the mapping the transfer's template gave its index.
    [ -n "$mapping" ] || mapping=$(curl -s "$ES/bench-xfer-t/_mapping" | jq -c '.["bench-xfer-t"].mappings')
    es_delete bench-xfer-t

    es_delete bench-xfer-c
    curl -sf -o /dev/null -X PUT "$ES/bench-xfer-c" -H 'Content-Type: application/json' \
      -d "{\"mappings\": $mapping}" || die "cannot create the reference index"
    t0=$(now)
    # shellcheck disable=SC2016
    (find "$RUN/bulk" -name 'body-*' | sort | xargs -P "$XFER_PARALLEL" -I{} \
      curl -s -o /dev/null -H 'Content-Type: application/x-ndjson' --data-binary @{} "$ES/_bulk") &
    pid=$!
    started+=("$pid")
    result=$(measure_index bench-xfer-c "")
    wait "$pid"
    forget "$pid"
    say "transfer run $run curl-bulk: docs/s docs/s-steady wall-s = $result"
    xfer_curl+=("$result")
    es_delete bench-xfer-c
  done
fi

# ------------------------------------------------------------------------ multiline

# A Java service's log (logback layout): FILES files × MULTI_LINES lines, 1 log line in 25 an
# ERROR followed by its stack trace (the exception line, 10–40 frames, half of them with a
# `Caused by:` and 5–20 more frames and `... N more`). Every file ends with a plain log line.
# Writes the file lines and the events (log lines) of each file to .lines / .events.
multi_plain=()
multi_java=()
if has_part multiline; then
  MULTI_LINES=${BENCH_MULTI_LINES:-1000000}
  MCORPUS="$WORK/corpus-java-v1-$FILES-$MULTI_LINES"
  if [ ! -f "$MCORPUS/.complete" ]; then
    say "writing the stack-trace corpus: $FILES files × $MULTI_LINES lines into $MCORPUS"
    rm -rf "$MCORPUS"
    mkdir -p "$MCORPUS"
    for f in $(seq 1 "$FILES"); do
      awk -v seed=$((71 + f)) -v lines="$MULTI_LINES" -v out="$MCORPUS/app-$f.log" 'BEGIN {
        srand(seed)
        split("OrderService PaymentGateway InventoryClient CartController UserRepository", cls, " ")
        n = 0; events = 0
        while (n < lines - 1) {
          s = int(n / 200)
          c = cls[int(rand() * 5) + 1]
          error = (rand() < 0.04)
          printf "2026-11-23 %02d:%02d:%02d.%03d %-5s [http-nio-8080-exec-%d] c.e.checkout.%s - order %d %s in %d ms\n",
            int(s / 3600) % 24, int(s / 60) % 60, s % 60, int(rand() * 1000), (error ? "ERROR" : "INFO"),
            int(rand() * 200), c, int(rand() * 1000000), (error ? "failed" : "processed"), int(rand() * 900) > out
          n++; events++
          if (!error) continue
          printf "java.lang.IllegalStateException: order %d cannot be charged: gateway answered 502\n", int(rand() * 1000000) > out
          n++
          frames = 10 + int(rand() * 31)
          for (i = 0; i < frames; i++) {
            printf "\tat com.example.checkout.%s.step%d(%s.java:%d)\n", cls[int(rand() * 5) + 1], i, c, 20 + int(rand() * 400) > out
            n++
          }
          if (rand() < 0.5) {
            print "Caused by: java.io.IOException: Connection reset by peer" > out
            n++
            frames = 5 + int(rand() * 16)
            for (i = 0; i < frames; i++) {
              printf "\tat java.base/sun.nio.ch.SocketDispatcher.read%d(SocketDispatcher.java:%d)\n", i, 40 + i > out
              n++
            }
            printf "\t... %d more\n", 8 + int(rand() * 30) > out
            n++
          }
        }
        printf "2026-11-23 23:59:59.999 INFO  [main] c.e.checkout.OrderService - done\n" > out
        n++; events++
        print n > (out ".lines"); print events > (out ".events")
      }'
    done
    touch "$MCORPUS/.complete"
  fi
  MBYTES=$(cat "$MCORPUS"/*.log | wc -c)
  MLINES=$(cat "$MCORPUS"/*.lines | awk '{ s += $1 } END { print s }')
  MEVENTS=$(cat "$MCORPUS"/*.events | awk '{ s += $1 } END { print s }')
  cat "$MCORPUS"/*.log >/dev/null
  say "stack-trace corpus: $MLINES lines in $MEVENTS events, $MBYTES bytes"

  # ship_multi MODE RUN (plain|java): ships the corpus, with `multiline = "java"` or without,
  # and sets RESULT to "MB/s documents/s CPU-s/GB wall-s". The last line of each file (a plain
  # log line, in both modes) is left out of the count: in java mode it is closed only by the
  # 1 s timeout, a latency and not a cost of joining.
  ship_multi() {
    local mode=$1 run=$2 topic dir pid t0 waited done_at cpu target
    topic="bench-multi-$mode-$STAMP-$run"
    dir="$RUN/multi-$mode-$run"
    mkdir -p "$dir"
    topic_create "$topic"
    agent_config "$dir/agent.toml" "$dir/data" "$MCORPUS/*.log" "$topic"
    if [ "$mode" = java ]; then
      echo 'multiline = "java"' >>"$dir/agent.toml"
      target=$((MEVENTS - FILES))
    else
      target=$((MLINES - FILES))
    fi
    sync
    t0=$(now)
    "$BIN" agent --config "$dir/agent.toml" 2>"$dir/agent.log" &
    pid=$!
    started+=("$pid")
    waited=$(wait_count acked - "$target" "$pid")
    done_at=$(awk '{ print $3 }' <<<"$waited")
    cpu=$(cpu_seconds "$pid")
    stop "$pid"
    rm -rf "$dir/data"
    RESULT=$(awk -v s="$t0" -v e="$done_at" -v b="$MBYTES" -v d="$target" -v c="$cpu" 'BEGIN { t = e - s
      printf "%.1f %.0f %.1f %.2f\n", b / t / 1e6, d / t, c / (b / 1e9), t }')
  }
  for run in $(seq 1 "$RUNS"); do
    for mode in plain java; do
      ship_multi "$mode" "$run"
      say "multiline run $run $mode: MB/s documents/s CPU-s/GB wall-s = $RESULT"
      if [ "$mode" = plain ]; then multi_plain+=("$RESULT"); else multi_java+=("$RESULT"); fi
    done
  done
fi

# ------------------------------------------------------------------------ parse

# The transfer indexing JSON lines, without and with `[[parse]] format = "json"` (and an
# RFC 3339 timestamp): BENCH_XFER_DOCS lines of a service's JSON log, shipped by the agent into
# a pre-filled topic once, then indexed into fresh indices, alternating, RUNS times each.
parse_plain=()
parse_json=()
if has_part parse; then
  psrc="bench-parse-src-$STAMP"
  mkdir -p "$RUN/parse-logs"
  awk -v n="$XFER_DOCS" 'BEGIN {
    srand(97)
    split("info info info info info info info warn error debug", levels, " ")
    split("checkout payment inventory cart users", services, " ")
    for (i = 0; i < n; i++) {
      s = int(i / 50)
      printf "{\"ts\":\"2026-11-23T%02d:%02d:%02d.%03dZ\",\"level\":\"%s\",\"service\":\"%s\",\"user_id\":%d,\"path\":\"/api/v1/orders/%d\",\"status\":%d,\"duration_ms\":%d,\"msg\":\"order %d processed\"}\n",
        int(s / 3600) % 24, int(s / 60) % 60, s % 60, int(rand() * 1000), levels[int(rand() * 10) + 1],
        services[int(rand() * 5) + 1], int(rand() * 100000), int(rand() * 1000000),
        (rand() < 0.05 ? 500 : 200), int(rand() * 900), i
    }
  }' >"$RUN/parse-logs/app.json.log"
  prefill_topic parse "$RUN/parse-logs/*.log" "$psrc" "$XFER_DOCS"
  for run in $(seq 1 "$RUNS"); do
    for mode in plain json; do
      es_delete bench-parse-t
      transfer_config "$RUN/parse-$mode-$run.toml" "bench-parse-$STAMP-$mode-$run" "$psrc" bench-parse-t bench-parse-dlq
      if [ "$mode" = json ]; then
        # The corpus' times are days before the read time: a skew of ten years accepts them,
        # so every document takes the whole time path.
        printf '[[parse]]\ntopics = ["%s"]\nformat = "json"\ntimestamp = { field = "ts", format = "rfc3339", max_skew_ms = 315360000000 }\n' \
          "$psrc" >>"$RUN/parse-$mode-$run.toml"
      fi
      t0=$(now)
      "$BIN" transfer --config "$RUN/parse-$mode-$run.toml" 2>"$RUN/parse-$mode-$run.log" &
      pid=$!
      started+=("$pid")
      result=$(measure_index bench-parse-t "$pid")
      result="$result $(cpu_seconds "$pid")"
      stop "$pid"
      if [ "$mode" = json ]; then
        parsed=$(curl -s "$ES/bench-parse-t/_count?q=level:error" | jq '.count // 0')
        [ "$parsed" -gt 0 ] || die "the parsed index holds no level:error document"
        parse_json+=("$result")
      else
        parse_plain+=("$result")
      fi
      say "parse run $run $mode: docs/s docs/s-steady wall-s CPU-s = $result"
      es_delete bench-parse-t
    done
  done
fi

# ------------------------------------------------------------------------ latency

latency=""
if has_part latency; then
  mkdir -p "$RUN/live"
  live_topic="bench-live-$STAMP"
  topic_create "$live_topic"
  es_delete bench-live
  agent_config "$RUN/live-agent.toml" "$RUN/live-agent-data" "$RUN/live/*.log" "$live_topic"
  transfer_config "$RUN/live-transfer.toml" "bench-live-$STAMP" "$live_topic" bench-live bench-live-dlq
  "$BIN" agent --config "$RUN/live-agent.toml" 2>"$RUN/live-agent.log" &
  agent_pid=$!
  started+=("$agent_pid")
  "$BIN" transfer --config "$RUN/live-transfer.toml" 2>"$RUN/live-transfer.log" &
  transfer_pid=$!
  started+=("$transfer_pid")
  latency=$(python3 scripts/bench-latency.py --file "$RUN/live/live.log" --es "$ES" --index bench-live \
    --rate "$LAT_RATE" --seconds "$LAT_SECONDS") || die "latency probe failed: $latency"
  stop "$agent_pid"
  stop "$transfer_pid"
  es_delete bench-live
  say "$latency"
fi

# ------------------------------------------------------------------------ console

console_report=""
if has_part console; then
  # An index of CONSOLE_LINES lines shipped by the agent and indexed by the transfer (the corpus'
  # files repeated until each has its share), kept between runs: loading it takes minutes.
  cindex="bench-console-v$CORPUS_VERSION-$CONSOLE_LINES"
  if [ "$(es_count "$cindex")" -ne "$CONSOLE_LINES" ]; then
    say "loading $cindex: $(fmt_int "$CONSOLE_LINES") lines through the agent and the transfer"
    es_delete "$cindex"
    rm -rf "$RUN/console-logs"
    mkdir -p "$RUN/console-logs"
    share=$((CONSOLE_LINES / FILES))
    for f in $(seq 1 "$FILES"); do
      n=$share
      [ "$f" -lt "$FILES" ] || n=$((CONSOLE_LINES - share * (FILES - 1)))
      # (the loop ends when head has enough and cat meets the closed pipe)
      { while cat "$CORPUS/access-$f.log"; do :; done; } 2>/dev/null | head -n "$n" >"$RUN/console-logs/access-$f.log" || true
    done
    ctopic="bench-console-src-$STAMP"
    prefill_topic console "$RUN/console-logs/*.log" "$ctopic" "$CONSOLE_LINES"
    transfer_config "$RUN/console-transfer.toml" "bench-console-$STAMP" "$ctopic" "$cindex" bench-console-dlq
    "$BIN" transfer --config "$RUN/console-transfer.toml" 2>"$RUN/console-transfer.log" &
    pid=$!
    started+=("$pid")
    wait_count index "$cindex" "$CONSOLE_LINES" "$pid" >/dev/null
    stop "$pid"
    rm -rf "$RUN/console-logs" "$RUN/console-agent-data"
  fi
  curl -s -o /dev/null -X POST "$ES/$cindex/_forcemerge?max_num_segments=1" || true
  cat >"$RUN/console.toml" <<CONF
listen = "$CONSOLE_ADDR"
[elasticsearch]
url = "$ES"
index_pattern = "$cindex"
CONF
  "$BIN" console --config "$RUN/console.toml" 2>"$RUN/console.log" &
  console_pid=$!
  started+=("$console_pid")
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://$CONSOLE_ADDR/" && break; sleep 0.1; done
  console_report=$(python3 scripts/bench-console.py --console "http://$CONSOLE_ADDR" --pid "$console_pid" \
    --es "$ES" --index "$cindex") || die "console benchmark failed"
  stop "$console_pid"
fi

# ------------------------------------------------------------------------ report

col() { # col N VALUES...: median of column N of the given result lines
  local n=$1
  shift
  printf '%s\n' "$@" | awk -v n="$n" '{ print $n }' | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
disk_src=$(findmnt -n -o SOURCE -T "$WORK" 2>/dev/null || echo "?")
disk_fs=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || echo "?")
disk_dev=$(basename "$disk_src")
disk_rot=$(cat "/sys/block/$disk_dev/queue/rotational" 2>/dev/null || echo "?")
disk_size=$(df -h --output=size "$WORK" | tail -n1 | tr -d ' ')
rsyslog_version=$(/usr/sbin/rsyslogd -v 2>/dev/null | awk 'NR == 1 { print $2 }' | tr -d ',')
es_version=$(curl -s "$ES" | jq -r '.version.number')
cmdline=""
for var in $(compgen -e | grep -E '^(BENCH_[A-Z_]+|RUNS)$' | sort); do
  value=${!var}
  [[ "$value" =~ ^[A-Za-z0-9._/:-]*$ ]] || value="'$value'"
  cmdline+="$var=$value "
done
cmdline+="scripts/bench.sh"

header="$RUN/header.md"
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), logship $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src wal Cargo.toml || echo '+changes'). ${NOTE:+**$NOTE.**}"
  echo
  echo "Machine: $(nproc) × $cpu_model, $mem_gib GiB RAM, disk $disk_src ($disk_fs, $disk_size, rotational=$disk_rot), Linux $(uname -r); Kafka broker (127.0.0.1), Elasticsearch $es_version and etcd on the same machine. rsyslog $rsyslog_version."
  echo
  echo "Command: \`$cmdline\`"
} >"$header"
report="$RUN/report.md"
{
  cat "$header"
  if has_part ship; then
    echo
    echo "### Files → Kafka, durability on"
    echo
    echo "Corpus: $FILES files × $(fmt_int "$LINES") seeded access-log lines, $(fmt_int "$CORPUS_LINES") lines, $(awk -v b="$CORPUS_BYTES" 'BEGIN { printf "%.0f", b / 1e6 }') MB ($CORPUS_LONG lines of 2–8 KiB, the rest ~110 B), read from the page cache. Each run ships it into a fresh 4-partition topic; wall time is from the shipper's start until every line is in Kafka, polled every 0.2 s: for rsyslog (one record per line) when the sum of the topic's end offsets (\`kcat -Q\`) equals the line count; for logship (NDJSON records of up to 1,000 lines) when its count of lines acknowledged by Kafka (\`logship_kafka_delivered_lines_total\`, acks=all) does — and after each run the topic is read back with \`kcat\` and must hold every line. CPU = user+sys of the shipper's process (all threads, \`/proc/PID/stat\`); RSS = its \`VmHWM\` at that moment; broker CPU = the Kafka broker's user+sys over the same interval. MB/s counts source bytes. Medians of $RUNS runs, alternating logship, rsyslog."
    echo
    echo "| shipper | lines/s | MB/s (source) | CPU-s/GB | peak RSS MiB | wall s | broker CPU-s/GB |"
    echo "|---|---|---|---|---|---|---|"
    for tool in $SHIPPERS; do
      if [ "$tool" = logship ]; then set -- "${ship_logship[@]}"; else set -- "${ship_rsyslog[@]}"; fi
      echo "| $tool | $(fmt_int "$(col 1 "$@")") | $(col 2 "$@") | $(col 3 "$@") | $(col 4 "$@") | $(col 5 "$@") | $(col 6 "$@") |"
    done
    echo
    echo "logship: \`agent\` with its defaults (sled WAL fsync'd per read round before shipping, idempotent producer, acks=all, lz4; one JSON object per line with id, host, file, offset and read time, up to 1,000 lines / 64 KiB per Kafka record). rsyslog: \`rsyslogd -n\` private instance, imfile (inotify, state files persisted every 10,000 lines, \`freshStartTail=off\`) → omkafka (\`acks=all\`, \`enable.idempotence=true\`, \`compression.codec=lz4\`, raw line) behind a disk-assisted LinkedList action queue saved on shutdown. rsyslog's durability is weaker: its queue spills to disk only when the memory part is full and its state files run ahead of Kafka's acknowledgements."
    for short in "${short_runs[@]}"; do
      echo
      echo "Short run: $short."
    done
    if [ ${#ship_logship[@]} -gt 0 ] && [ ${#ship_rsyslog[@]} -gt 0 ]; then
      echo
      echo "logship/rsyslog lines/s ratio: $(ratio "$(col 1 "${ship_logship[@]}")" "$(col 1 "${ship_rsyslog[@]}")")"
    fi
  fi
  if has_part transfer; then
    echo
    echo "### Transfer: Kafka → Elasticsearch"
    echo
    echo "$(fmt_int "$XFER_DOCS") corpus lines (the first ones) shipped by the agent into a pre-filled 4-partition topic (NDJSON records of up to 1,000 lines), indexed into a fresh index by \`logship transfer\` (\`max_docs\` $XFER_BATCH, \`max_inflight_bulks\` $XFER_PARALLEL, new consumer group), against \`curl\` posting the same documents as NDJSON \`_bulk\` bodies of $XFER_BATCH \`create\` actions with the same ids, $XFER_PARALLEL at a time (\`xargs -P\`), into a fresh index with the same mapping. Time until \`_count\` (polled every 0.2 s, default 1 s refresh) shows every document; \"steady\" counts from the first visible document, which leaves out the transfer's startup (group join, templates). Medians of $RUNS runs, alternating."
    echo
    echo "| what | docs/s (steady) | docs/s (with startup) | wall s | CPU-s | peak RSS MiB |"
    echo "|---|---|---|---|---|---|"
    echo "| logship transfer | $(fmt_int "$(col 2 "${xfer_logship[@]}")") | $(fmt_int "$(col 1 "${xfer_logship[@]}")") | $(col 3 "${xfer_logship[@]}") | $(col 4 "${xfer_logship[@]}") | $(col 5 "${xfer_logship[@]}") |"
    echo "| curl \`_bulk\` | $(fmt_int "$(col 2 "${xfer_curl[@]}")") | $(fmt_int "$(col 1 "${xfer_curl[@]}")") | $(col 3 "${xfer_curl[@]}") | – | – |"
    echo
    echo "transfer/curl-bulk docs/s ratio: $(ratio "$(col 2 "${xfer_logship[@]}")" "$(col 2 "${xfer_curl[@]}")") (steady), $(ratio "$(col 1 "${xfer_logship[@]}")" "$(col 1 "${xfer_curl[@]}")") (with startup)"
  fi
  if has_part latency; then
    echo
    echo "### Latency: write → searchable"
    echo
    echo "Agent and transfer running with their defaults (transfer \`max_wait_ms\` 500, index refresh 1 s); \`scripts/bench-latency.py\` appends $LAT_RATE lines/s for $LAT_SECONDS s to one file, each line carrying its write time, after a warm-up line has become searchable. It searches the index every 100 ms for the lines not yet seen and takes the time of the search request that first returns a line as its searchable time (so a figure is late by at most 100 ms, never early)."
    echo
    echo "| span | lines seen | p50 | p90 | p99 | max |"
    echo "|---|---|---|---|---|---|"
    tr ' ' '\n' <<<"$latency" | awk -F= '/=/ { v[$1] = $2 } END {
      printf "| write → searchable | %s of %s | %s ms | %s ms | %s ms | %s ms |\n", v["seen"], v["lines"], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["max_ms"]
      printf "| write → read by the agent (`@timestamp`) | | %s ms | | %s ms | |\n", v["read_p50_ms"], v["read_p99_ms"] }'
    echo
    echo "latency write→searchable at $LAT_RATE lines/s: p50 $(sed -n 's/.* p50_ms=\([0-9]*\).*/\1/p' <<<"$latency") ms, p99 $(sed -n 's/.* p99_ms=\([0-9]*\).*/\1/p' <<<"$latency") ms"
  fi
} >"$report"
events_section="$RUN/events.md"
if has_part multiline || has_part parse; then
  {
    cat "$header"
    if has_part multiline; then
      echo
      echo "### Multiline: \`multiline = \"java\"\` against the same files without it"
      echo
      echo "$FILES files of a Java service's log (logback layout), $(fmt_int "$MLINES") lines, $(awk -v b="$MBYTES" 'BEGIN { printf "%.0f", b / 1e6 }') MB: 1 log line in 25 is an ERROR followed by its stack trace (10–40 frames, half with a \`Caused by:\` and 5–20 more frames), so $(fmt_int "$MEVENTS") events. The release agent with its defaults ships them into a fresh topic, without \`multiline\` (every line a document) and with \`multiline = \"java\"\` (every event a document), alternating, $RUNS runs each; wall time until Kafka acknowledged every document but the last line of each file (which only the 1 s timeout closes in java mode). MB/s counts source bytes."
      echo
      echo "| collect | MB/s (source) | documents/s | CPU-s/GB | wall s |"
      echo "|---|---|---|---|---|"
      echo "| plain lines | $(col 1 "${multi_plain[@]}") | $(fmt_int "$(col 2 "${multi_plain[@]}")") | $(col 3 "${multi_plain[@]}") | $(col 4 "${multi_plain[@]}") |"
      echo "| \`multiline = \"java\"\` | $(col 1 "${multi_java[@]}") | $(fmt_int "$(col 2 "${multi_java[@]}")") | $(col 3 "${multi_java[@]}") | $(col 4 "${multi_java[@]}") |"
      echo
      echo "java/plain MB/s ratio: $(ratio "$(col 1 "${multi_java[@]}")" "$(col 1 "${multi_plain[@]}")") (target ≥ 0.80)"
    fi
    if has_part parse; then
      echo
      echo "### Parsing: the transfer with \`[[parse]] format = \"json\"\` against without"
      echo
      echo "$(fmt_int "$XFER_DOCS") JSON lines of a service's log (8 keys: time, level, service, user id, path, status, duration, message) shipped by the agent into a pre-filled topic, indexed into a fresh index by \`logship transfer\` (\`max_docs\` $XFER_BATCH, \`max_inflight_bulks\` $XFER_PARALLEL, new group each run) without parsing (the line in \`message\`) and with \`format = \"json\"\` and \`timestamp = { field = \"ts\", format = \"rfc3339\" }\` (the 8 keys as fields, \`@timestamp\` from \`ts\`, \`event.ingested\`), alternating, $RUNS runs each. Docs/s as in the transfer table; Elasticsearch indexing the parsed fields is part of the cost."
      echo
      echo "| transfer | docs/s (steady) | docs/s (with startup) | wall s | CPU-s (transfer) |"
      echo "|---|---|---|---|---|"
      echo "| without parsing | $(fmt_int "$(col 2 "${parse_plain[@]}")") | $(fmt_int "$(col 1 "${parse_plain[@]}")") | $(col 3 "${parse_plain[@]}") | $(col 4 "${parse_plain[@]}") |"
      echo "| \`format = \"json\"\` + timestamp | $(fmt_int "$(col 2 "${parse_json[@]}")") | $(fmt_int "$(col 1 "${parse_json[@]}")") | $(col 3 "${parse_json[@]}") | $(col 4 "${parse_json[@]}") |"
      echo
      echo "json/plain docs/s ratio: $(ratio "$(col 2 "${parse_json[@]}")" "$(col 2 "${parse_plain[@]}")") (steady; target ≥ 0.80)"
    fi
  } >"$events_section"
fi
console_section="$RUN/console.md"
if has_part console; then
  {
    cat "$header"
    echo
    echo "A console (release build, its defaults) over an index of $(fmt_int "$CONSOLE_LINES") lines shipped by the agent and indexed by the transfer (the bench corpus' access-log lines, its files repeated to that count; one shard, force-merged to one segment), measured by \`scripts/bench-console.py\` on the same machine as Elasticsearch."
    echo
    echo "$console_report"
  } >"$console_section"
fi

# write_section BEGIN-MARKER END-MARKER TITLE FILE: puts FILE under TITLE between the markers in
# docs/bench.md (appended the first time).
write_section() {
  local doc=docs/bench.md section="$RUN/section.md"
  { echo "$1"; echo "## $3"; echo; cat "$4"; echo "$2"; } >"$section"
  if grep -qF "$1" "$doc"; then
    awk -v b="$1" -v e="$2" -v f="$section" '
      $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
      $0 == e { skip = 0; next }
      !skip' "$doc" >"$doc.tmp" && mv "$doc.tmp" "$doc"
  else
    { echo; cat "$section"; } >>"$doc"
  fi
  say "updated $doc: $3"
}

echo
if has_part ship || has_part transfer || has_part latency; then
  cat "$report"
  if [ "$WRITE_DOC" = 1 ]; then
    write_section '<!-- bench.sh:begin -->' '<!-- bench.sh:end -->' "Side by side (\`scripts/bench.sh\`)" "$report"
  fi
fi
if has_part multiline || has_part parse; then
  cat "$events_section"
  if [ "$WRITE_DOC" = 1 ]; then
    write_section '<!-- bench.sh:events:begin -->' '<!-- bench.sh:events:end -->' "Events: multiline and parsing (\`BENCH_PARTS='multiline parse' scripts/bench.sh\`)" "$events_section"
  fi
fi
if has_part console; then
  cat "$console_section"
  if [ "$WRITE_DOC" = 1 ]; then
    write_section '<!-- bench.sh:console:begin -->' '<!-- bench.sh:console:end -->' "The console (\`BENCH_PARTS=console scripts/bench.sh\`)" "$console_section"
  fi
fi
