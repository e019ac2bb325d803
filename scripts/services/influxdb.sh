# shellcheck shell=bash
# InfluxDB 1.x (Debian's `influxdb`) for scripts/services.sh: HTTP on 127.0.0.1:8086, no
# authentication, its meta, data and WAL under .services/influxdb (kept across down/up).
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints and SERVICES_LIB, and
# runs with `set -euo pipefail`); not meant to be run alone.

INFLUXDB_DIR="$SV/influxdb"
INFLUXDB_PID="$RUN/influxdb.pid"
INFLUXDB_LOG="$INFLUXDB_DIR/influxdb.log"

influxdb_health() {
  port_open "$INFLUXDB_EP" || return 1
  curl -sf -m 3 -o /dev/null "$INFLUXDB_EP/ping"
}
influxdb_running() { pid_alive "$INFLUXDB_PID" "$INFLUXDB_DIR/influxdb.conf"; }
influxdb_start() {
  mkdir -p "$INFLUXDB_DIR/meta" "$INFLUXDB_DIR/data" "$INFLUXDB_DIR/wal"
  command -v influxd >/dev/null 2>&1 || die "influxdb: influxd is missing (scripts/deps.sh installs Debian's influxdb)"
  cat >"$INFLUXDB_DIR/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:8089"
[meta]
  dir = "$INFLUXDB_DIR/meta"
[data]
  dir = "$INFLUXDB_DIR/data"
  wal-dir = "$INFLUXDB_DIR/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:8086"
  log-enabled = false
[monitor]
  store-enabled = false
EOF
  spawn "$INFLUXDB_LOG" "$INFLUXDB_PID" influxd -config "$INFLUXDB_DIR/influxdb.conf"
}
influxdb_stop() { stop_pid "$INFLUXDB_PID" "$INFLUXDB_DIR/influxdb.conf" influxd; }
influxdb_wipe() { rm -rf "$INFLUXDB_DIR/meta" "$INFLUXDB_DIR/data" "$INFLUXDB_DIR/wal"; }
influxdb_logfile() { echo "$INFLUXDB_LOG"; }
