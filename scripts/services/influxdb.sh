# shellcheck shell=bash
# InfluxDB 1.x (Debian's `influxdb`) for scripts/services.sh: HTTP on 127.0.0.1:8086, no
# authentication, its meta, data and WAL under .services/influxdb (kept across down/up).
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints and SERVICES_LIB, and
# runs with `set -euo pipefail`); not meant to be run alone.

INFLUXDB_DIR="$SV/influxdb"
INFLUXDB_PID="$RUN/influxdb.pid"
INFLUXDB_LOG="$INFLUXDB_DIR/influxdb.log"

# influxdb_conf DIR RPC_ADDR HTTP_ADDR [HTTP_LINE ...]: on standard output, the influxdb.conf of
# a server keeping its state in DIR, with the extra lines for its [http] section (its access log
# is off unless one of them turns it on).
influxdb_conf() {
  local dir="$1" rpc="$2" http="$3" line access_log="  log-enabled = false\n"
  shift 3
  for line in "$@"; do [[ "$line" == log-enabled* ]] && access_log=""; done
  {
    printf 'reporting-disabled = true\nbind-address = "%s"\n' "$rpc"
    printf '[meta]\n  dir = "%s/meta"\n' "$dir"
    printf '[data]\n  dir = "%s/data"\n  wal-dir = "%s/wal"\n  query-log-enabled = false\n' "$dir" "$dir"
    printf '[http]\n  enabled = true\n  bind-address = "%s"\n'"$access_log" "$http"
    for line in "$@"; do printf '  %s\n' "$line"; done
    printf '[monitor]\n  store-enabled = false\n'
  }
}
# The configuration each server runs with (services.sh records its digest as part of its mode).
influxdb_config() { influxdb_conf "$INFLUXDB_DIR" 127.0.0.1:8089 127.0.0.1:8086; }

influxdb_health() {
  port_open "$INFLUXDB_EP" || { HEALTH_WHY="nothing accepts TCP connections on $INFLUXDB_EP"; return 1; }
  curl -sf -m 3 -o /dev/null "$INFLUXDB_EP/ping" || { HEALTH_WHY="GET $INFLUXDB_EP/ping did not answer 2xx within 3 s"; return 1; }
}
influxdb_running() { pid_alive "$INFLUXDB_PID" "$INFLUXDB_DIR/influxdb.conf"; }
influxdb_start() {
  mkdir -p "$INFLUXDB_DIR/meta" "$INFLUXDB_DIR/data" "$INFLUXDB_DIR/wal"
  command -v influxd >/dev/null 2>&1 || die "influxdb: influxd is missing (scripts/deps.sh installs Debian's influxdb)"
  influxdb_config >"$INFLUXDB_DIR/influxdb.conf"
  spawn "$INFLUXDB_LOG" "$INFLUXDB_PID" influxd -config "$INFLUXDB_DIR/influxdb.conf"
}
influxdb_stop() { stop_pid "$INFLUXDB_PID" "$INFLUXDB_DIR/influxdb.conf" influxd; }
influxdb_wipe() { rm -rf "$INFLUXDB_DIR/meta" "$INFLUXDB_DIR/data" "$INFLUXDB_DIR/wal"; }
influxdb_logfile() { echo "$INFLUXDB_LOG"; }

# ---------------------------------------------------------------- influxsec (secure mode)
#
# A second InfluxDB for LOGSHIP_SECURE=1 (docs/security.md) on https://127.0.0.1:8087: TLS with
# the test CA's server certificate and authentication on. Users (passwords in .services/pki):
#   root     admin (influxdb-root-password): what the tests read back with
#   logship  no admin rights, ALL on database logship_sec (influxdb-password): what the
#            transfer and the console use, as a user of a shared InfluxDB would be given.

INFLUXSEC_DIR="$SV/influxsec"
INFLUXSEC_PID="$RUN/influxsec.pid"
INFLUXSEC_LOG="$INFLUXSEC_DIR/influxdb.log"
INFLUXSEC_DEFAULT=https://127.0.0.1:8087
INFLUXSEC_EP="${LOGSHIP_INFLUXDB_SECURE:-$INFLUXSEC_DEFAULT}"

influxsec_query() { # influxsec_query [USER] QUERY: InfluxQL over https (as USER once auth is set)
  local auth=() query="$1"
  if [ "$#" -eq 2 ]; then auth=(-u "$1:$(cat "$PKI/influxdb-$1-password")"); query="$2"; fi
  curl -sf -m 10 --cacert "$PKI/ca.crt" "${auth[@]}" -XPOST "$INFLUXSEC_EP/query" \
    --data-urlencode "q=$query" >/dev/null
}

# influxsec_auth: the admin, the transfer's user and its database (once per data directory).
influxsec_auth() {
  [ -f "$INFLUXSEC_DIR/meta/.logship-auth" ] && return 0
  local user
  for user in root logship; do
    [ -s "$PKI/influxdb-$user-password" ] || (umask 077 && openssl rand -hex 16 >"$PKI/influxdb-$user-password")
  done
  # The first admin may be created without credentials; after that, only by an admin.
  influxsec_query "CREATE USER root WITH PASSWORD '$(cat "$PKI/influxdb-root-password")' WITH ALL PRIVILEGES" ||
    influxsec_query root "SHOW USERS" || return 1
  influxsec_query root "CREATE USER logship WITH PASSWORD '$(cat "$PKI/influxdb-logship-password")'" || return 1
  influxsec_query root "CREATE DATABASE logship_sec" || return 1
  influxsec_query root "GRANT ALL ON logship_sec TO logship" || return 1
  touch "$INFLUXSEC_DIR/meta/.logship-auth"
}

influxsec_health() {
  port_open "$INFLUXSEC_EP" || { HEALTH_WHY="nothing accepts TCP connections on $INFLUXSEC_EP"; return 1; }
  curl -sf -m 3 --cacert "$PKI/ca.crt" -o /dev/null "$INFLUXSEC_EP/ping" || { HEALTH_WHY="GET $INFLUXSEC_EP/ping (TLS, test CA) did not answer 2xx within 3 s"; return 1; }
  influxsec_auth || { HEALTH_WHY="the users of $INFLUXSEC_EP could not be set up"; return 1; }
}
influxsec_running() { pid_alive "$INFLUXSEC_PID" "$INFLUXSEC_DIR/influxdb.conf"; }
influxsec_start() {
  pki_ensure
  mkdir -p "$INFLUXSEC_DIR/meta" "$INFLUXSEC_DIR/data" "$INFLUXSEC_DIR/wal"
  command -v influxd >/dev/null 2>&1 || die "influxsec: influxd is missing (scripts/deps.sh installs Debian's influxdb)"
  influxsec_config >"$INFLUXSEC_DIR/influxdb.conf"
  spawn "$INFLUXSEC_LOG" "$INFLUXSEC_PID" influxd -config "$INFLUXSEC_DIR/influxdb.conf"
}
influxsec_config() {
  influxdb_conf "$INFLUXSEC_DIR" 127.0.0.1:8091 127.0.0.1:8087 \
    "auth-enabled = true" "https-enabled = true" \
    "https-certificate = \"$PKI/server.crt\"" "https-private-key = \"$PKI/server.key\""
}
influxsec_stop() { stop_pid "$INFLUXSEC_PID" "$INFLUXSEC_DIR/influxdb.conf" influxsec; }
influxsec_wipe() { rm -rf "$INFLUXSEC_DIR/meta" "$INFLUXSEC_DIR/data" "$INFLUXSEC_DIR/wal"; }
influxsec_logfile() { echo "$INFLUXSEC_LOG"; }
