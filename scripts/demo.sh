#!/usr/bin/env bash
# The main job end to end, on this machine: Kafka, Elasticsearch, etcd and InfluxDB up; logship
# built; an agent tailing a sample log directory (with a rotation) and sampling its host's
# metrics; a transfer indexing into Elasticsearch and writing the metrics into InfluxDB; a
# search result; then everything is LEFT RUNNING: the agent, the transfer, the console (its URL
# printed last) and a small writer appending a few lines a second to the demo's logs (some
# ERRORs, a Java stack trace now and then), so the console's live tail, /hosts and /pipeline
# move.
#
#   scripts/demo.sh          # start (LINES=20000 by default); stops an earlier demo first
#   scripts/demo.sh stop     # stop what the demo started (and only that); servers keep running
#
# Knobs: LINES, DEMO_DIR (default /tmp/logship-demo), CONSOLE_LISTEN (default 127.0.0.1:9700),
# LOGSHIP_KAFKA, LOGSHIP_ES, LOGSHIP_ETCD, LOGSHIP_INFLUXDB.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=${DEMO_DIR:-/tmp/logship-demo}

# stop_demo: stops every process the demo at $demo started (their pids are in $demo/pids, one
# "PID NAME" a line); a pid is signalled only while its command line still names $demo, so a
# reused pid is never hit.
demo_pid_alive() {
  kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$demo"
}
stop_demo() {
  [ -f "$demo/pids" ] || { echo "demo: nothing to stop in $demo"; return 0; }
  local pid name t stopped=()
  while read -r pid name; do
    demo_pid_alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    stopped+=("$name")
  done <"$demo/pids"
  for ((t = 0; t < 150; t++)); do
    local alive=0
    while read -r pid name; do demo_pid_alive "$pid" && alive=1; done <"$demo/pids"
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  while read -r pid name; do
    if demo_pid_alive "$pid"; then
      echo "demo: $name (pid $pid) did not stop in 15 s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$demo/pids"
  rm -f "$demo/pids"
  echo "demo: stopped ${stopped[*]:-nothing (it had already stopped)}"
}

case "${1:-}" in
  stop) stop_demo; exit 0 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [stop]" >&2; exit 2 ;;
esac

LINES=${LINES:-20000}
ES=${LOGSHIP_ES:-http://127.0.0.1:9200}
BROKER=${LOGSHIP_KAFKA:-127.0.0.1:9092}
ETCD=${LOGSHIP_ETCD:-http://127.0.0.1:2379}
INFLUXDB=${LOGSHIP_INFLUXDB:-http://127.0.0.1:8086}
CONSOLE=${CONSOLE_LISTEN:-127.0.0.1:9700}
run_id=$(date +%s)
topic="demo_web_log_$run_id"
index="demo-web-$run_id"
metrics_topic="demo_metrics_$run_id"
database="demo_$run_id"
group="logship-demo-$run_id"
prefix="/logship-demo-$run_id"

echo "== demo: system packages and services"
bash scripts/deps.sh
bash scripts/services.sh up

echo "== demo: building logship"
cargo build --quiet --bin logship
bin="$PWD/target/debug/logship"

# An earlier demo (its agent, transfer, console and writer) is stopped first.
stop_demo >/dev/null
if [ -f "$demo/console.pid" ]; then kill -TERM "$(cat "$demo/console.pid")" 2>/dev/null || true; fi
rm -rf "$demo"
mkdir -p "$demo/logs"
cat >"$demo/agent.toml" <<CONF
host = "demo-host"
data_dir = "$demo/agent-data"
rescan_interval_ms = 500
rotate_wait_ms = 1000
[kafka]
brokers = "$BROKER"
[[collect]]
path = "$demo/logs/access.log"
topic = "$topic"
[[collect]]
path = "$demo/logs/app.log"
topic = "$topic"
multiline = "java"
[etcd]
endpoints = ["$ETCD"]
prefix = "$prefix"
allowed_paths = ["$demo/logs"]
[host_metrics]
interval_ms = 2000
topic = "$metrics_topic"
CONF
cat >"$demo/transfer.toml" <<CONF
[kafka]
brokers = "$BROKER"
group = "$group"
topics = ["$topic", "$metrics_topic"]
[elasticsearch]
url = "$ES"
index = "$index-%Y.%m.%d"
[influxdb]
url = "$INFLUXDB"
database = "$database"
CONF
cat >"$demo/console.toml" <<CONF
listen = "$CONSOLE"
[elasticsearch]
url = "$ES"
index_pattern = "$index-*"
[etcd]
endpoints = ["$ETCD"]
prefix = "$prefix"
[influxdb]
url = "$INFLUXDB"
database = "$database"
[kafka]
brokers = "$BROKER"
transfer_group = "$group"
CONF
# The writer: a few lines a second into app.log, an ERROR now and then and a Java stack trace
# about every ten seconds (joined into one event by the collect entry's multiline = "java").
cat >"$demo/writer.sh" <<'WRITER'
#!/usr/bin/env bash
# Appends a few lines a second to the demo's app.log until stopped (scripts/demo.sh stop).
log="$1"
i=0
users=(alice bob carol dave erin)
while :; do
  i=$((i + 1))
  now=$(date '+%Y-%m-%d %H:%M:%S.%3N')
  user=${users[$((i % 5))]}
  if [ $((i % 40)) = 0 ]; then
    printf '%s ERROR [worker-%d] order %d failed for %s\n%s\n%s\n%s\n%s\n' "$now" $((i % 4)) "$i" "$user" \
      'java.lang.IllegalStateException: payment gateway timed out after 3000 ms' \
      '	at shop.payment.Gateway.charge(Gateway.java:88)' \
      '	at shop.orders.Checkout.complete(Checkout.java:41)' \
      '	at java.base/java.lang.Thread.run(Thread.java:840)' >>"$log"
  elif [ $((i % 7)) = 0 ]; then
    printf '%s ERROR [worker-%d] cart %d of %s: inventory service answered 503\n' "$now" $((i % 4)) "$i" "$user" >>"$log"
  elif [ $((i % 3)) = 0 ]; then
    printf '%s WARN  [worker-%d] slow query for %s: %d ms\n' "$now" $((i % 4)) "$user" $((200 + i % 900)) >>"$log"
  else
    printf '%s INFO  [worker-%d] %s viewed item %d\n' "$now" $((i % 4)) "$user" $((i % 500)) >>"$log"
  fi
  sleep 0.25
done
WRITER

# start NAME CMD...: detached (own session, no stdin), so it outlives this script; its pid is
# kept in $demo/pids for `scripts/demo.sh stop`.
start() {
  local name="$1"; shift
  setsid nohup "$@" >/dev/null 2>"$demo/$name.log" </dev/null &
  echo "$! $name" >>"$demo/pids"
}
finished=0
# A demo that fails part way stops what it started; one that finished leaves it running.
on_exit() { if [ "$finished" != 1 ]; then stop_demo; fi; }
trap on_exit EXIT

echo "== demo: starting agent and transfer (logs in $demo/*.log)"
start agent "$bin" agent --config "$demo/agent.toml"
start transfer "$bin" transfer --config "$demo/transfer.toml"

echo "== demo: writing $LINES access-log lines (rotating once halfway)"
half=$((LINES / 2))
for part in 1 2; do
  awk -v from=$(( (part - 1) * half )) -v n=$half 'BEGIN {
    for (i = from; i < from + n; i++)
      printf "10.0.%d.%d - - [23/Nov/2026:10:00:%02d +0000] \"GET /shop/item/%d HTTP/1.1\" %d %d\n",
        i % 256, (i * 7) % 256, i % 60, i, (i % 50 == 0 ? 500 : 200), 200 + i % 3000
  }' >>"$demo/logs/access.log"
  if [ "$part" = 1 ]; then
    sleep 2 # a file must exist under a collected name long enough to be seen (rescan: 0.5 s)
    mv "$demo/logs/access.log" "$demo/logs/access.log.1"
  fi
done

echo "== demo: waiting until Elasticsearch has all $LINES lines"
deadline=$(( $(date +%s) + 180 ))
count=0
while [ "$(date +%s)" -lt "$deadline" ]; do
  curl -s -XPOST "$ES/$index-*/_refresh" >/dev/null || true
  count=$(curl -s "$ES/$index-*/_count" -H 'Content-Type: application/json' \
    -d '{"query":{"wildcard":{"file":"*/access.log*"}}}' | sed -n 's/.*"count":\([0-9]*\).*/\1/p' || true)
  count=${count:-0}
  [ "$count" -ge "$LINES" ] && break
  sleep 1
done
echo "indexed: $count of $LINES"
if [ "$count" -lt "$LINES" ]; then
  echo "demo: only $count of $LINES lines were indexed (agent log: $demo/agent.log, transfer log: $demo/transfer.log)" >&2
  exit 1
fi

echo "== demo: a search: lines mentioning 500 (the server errors), first three by offset"
curl -s "$ES/$index-*/_search?size=3&sort=offset:asc" -H 'Content-Type: application/json' \
  -d '{"query":{"match":{"message":"500"}},"_source":["message","host","file","offset","@timestamp"]}' \
  >"$demo/search.json"
# (Printed from a file: `json.tool | head` failed the script under pipefail whenever head closed
# the pipe before python had written everything.)
python3 -m json.tool "$demo/search.json"

echo "== demo: the console and a writer (left running in the background)"
start console "$bin" console --config "$demo/console.toml"
start writer bash "$demo/writer.sh" "$demo/logs/app.log"
answered=""
for _ in $(seq 1 50); do
  if answered=$(curl -sf "http://$CONSOLE/api/search?q=message:500&from=now-1h&to=now&size=1"); then break; fi
  answered=""
  sleep 0.2
done
if [ -z "$answered" ]; then
  cat "$demo/console.log" >&2
  echo "demo: the console did not answer on $CONSOLE" >&2
  exit 1
fi
echo "console API: $(echo "$answered" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"], "hits for message:500 in the last hour")')"
# The transfer joins the metrics topic within 10 s of its creation by the agent's first sample.
points=0
for _ in $(seq 1 60); do
  points=$(curl -s -G "$INFLUXDB/query" --data-urlencode "db=$database" \
    --data-urlencode 'q=SELECT count(total) FROM mem' | sed -n 's/.*"values":\[\[[^,]*,\([0-9]*\)\]\].*/\1/p')
  points=${points:-0}
  [ "$points" -ge 3 ] && break
  sleep 1
done
echo "host metrics in InfluxDB ($database): $points memory samples so far"
pipeline=$(curl -sf "http://$CONSOLE/api/pipeline" || echo '{}')
echo "console /api/pipeline: $(echo "$pipeline" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(len(a.get("agents",[])), "agent(s), transfer lag", (a.get("lag") or {}).get("total"))')"
finished=1

cat <<MSG

== demo: done, and still running: the agent, the transfer, the console, and a writer appending
   a few lines a second to $demo/logs/app.log.
  agent config and log:     $demo/agent.toml, $demo/agent.log
  transfer config and log:  $demo/transfer.toml, $demo/transfer.log
  console config and log:   $demo/console.toml, $demo/console.log
  the topic (NDJSON):       kcat -b $BROKER -C -t $topic -c 1 | head -n 3
  the index:                curl -s '$ES/$index-*/_search?q=message:GET&size=1'

The console's live pages:
  http://$CONSOLE/tail?q=ERROR                     the live tail of the writer's ERRORs
  http://$CONSOLE/hosts?host=demo-host&range=15m   host metrics charts
  http://$CONSOLE/pipeline                         agents, transfer lag, indices

Stop the demo (agent, transfer, console, writer):  scripts/demo.sh stop
Stop the servers too:                              scripts/services.sh down

The console, with a sample search (server errors in the last hour):
  http://$CONSOLE/?q=message:500&from=now-1h&to=now
MSG
