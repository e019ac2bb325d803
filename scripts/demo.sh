#!/usr/bin/env bash
# The main job end to end, on this machine: Kafka, Elasticsearch, etcd and InfluxDB up; logship
# built; an agent tailing a sample log directory that keeps being written to (with a rotation)
# and sampling its host's metrics; a transfer indexing into Elasticsearch and writing the
# metrics into InfluxDB; then a search result, the console (left running, its URL printed last)
# and where to look next.
#
#   scripts/demo.sh            # LINES=20000 by default
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-20000}
ES=${LOGSHIP_ES:-http://127.0.0.1:9200}
BROKER=${LOGSHIP_KAFKA:-127.0.0.1:9092}
ETCD=${LOGSHIP_ETCD:-http://127.0.0.1:2379}
INFLUXDB=${LOGSHIP_INFLUXDB:-http://127.0.0.1:8086}
demo=${DEMO_DIR:-/tmp/logship-demo}
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
bin=target/debug/logship

# The console of an earlier demo run is still serving its port: stop it first.
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
path = "$demo/logs/*.log"
topic = "$topic"
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

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== demo: starting agent and transfer (logs in $demo/*.log)"
"$bin" agent --config "$demo/agent.toml" 2>"$demo/agent.log" &
pids+=($!)
"$bin" transfer --config "$demo/transfer.toml" 2>"$demo/transfer.log" &
pids+=($!)

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
  count=$(curl -s "$ES/$index-*/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p' || true)
  count=${count:-0}
  [ "$count" -ge "$LINES" ] && break
  sleep 1
done
echo "indexed: $count of $LINES"

echo "== demo: a search: lines mentioning 500 (the server errors), first three by offset"
curl -s "$ES/$index-*/_search?size=3&sort=offset:asc" -H 'Content-Type: application/json' \
  -d '{"query":{"match":{"message":"500"}},"_source":["message","host","file","offset","@timestamp"]}' \
  >"$demo/search.json"
# (Printed from a file: `json.tool | head` failed the script under pipefail whenever head closed
# the pipe before python had written everything.)
python3 -m json.tool "$demo/search.json"

echo "== demo: the console (left running in the background)"
CONSOLE=${CONSOLE_LISTEN:-127.0.0.1:9700}
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
setsid nohup "$bin" console --config "$demo/console.toml" >/dev/null 2>"$demo/console.log" &
echo $! >"$demo/console.pid"
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

cat <<MSG

== demo: done. Where to look next:
  agent config and log:     $demo/agent.toml, $demo/agent.log
  transfer config and log:  $demo/transfer.toml, $demo/transfer.log
  the topic (NDJSON):       kcat -b $BROKER -C -t $topic -c 1 | head -n 3
  the index:                curl -s '$ES/$index-*/_search?q=message:GET&size=1'
  console config and log:   $demo/console.toml, $demo/console.log (stop it: kill \$(cat $demo/console.pid))
  stop the servers:         scripts/services.sh down

The console's fleet pages (the demo's agent and transfer stopped when the script ended):
  http://$CONSOLE/hosts?host=demo-host&range=15m   host metrics charts
  http://$CONSOLE/pipeline                         agents, transfer lag, indices

The console, with a sample search (server errors in the last hour):
  http://$CONSOLE/?q=message:500&from=now-1h&to=now
MSG
if [ "$count" -lt "$LINES" ]; then
  echo "demo: only $count of $LINES lines were indexed" >&2
  exit 1
fi
