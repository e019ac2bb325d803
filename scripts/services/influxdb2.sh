# shellcheck shell=bash
# InfluxDB 1.8 as the v2 API server for scripts/services.sh (issue 31): `influxdb2` on
# http://127.0.0.1:8096 (RPC 127.0.0.1:8097), authentication on, Flux on. InfluxDB 1.8 serves
# InfluxDB 2's write endpoint (`POST /api/v2/write?bucket=database/retention_policy`), its Flux
# query endpoint (`/api/v2/query`) and `/query` (InfluxQL, as 2.x's v1 compatibility endpoint),
# with the token `Token user:password`. It has no organisations and no buckets API (`/api/v2/
# buckets` answers 404); docs/design.md ("Host metrics") says what testing against it proves and what not.
#
# Debian has only InfluxDB 1.6, so the server is built once from its Go module
# (`go install github.com/influxdata/influxdb/cmd/influxd@v1.8.10`, a few minutes on 2 cores)
# into a cache outside the checkout (/var/lib/logship-services as root, beside Elasticsearch's
# distribution; else ~/.cache/logship-services): a fresh clone does not build it again.
#
# Its HTTP access log is on (in .services/influxdb2/influxdb.log): tests read there which
# endpoint the transfer wrote to. One admin user, `admin`, with a random password: the token is in .services/influxdb2/token
# as `admin:<password>` (tests create and drop databases with it). Meta, data and WAL live
# under .services/influxdb2 (kept across down/up).
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints and SERVICES_LIB, and
# runs with `set -euo pipefail`); not meant to be run alone.

INFLUXDB2_VERSION=1.8.10
INFLUXDB2_DIR="$SV/influxdb2"
INFLUXDB2_PID="$RUN/influxdb2.pid"
INFLUXDB2_LOG="$INFLUXDB2_DIR/influxdb.log"
INFLUXDB2_TOKEN="$INFLUXDB2_DIR/token"
if [ "$(id -u)" = 0 ]; then
  INFLUXDB2_CACHE=/var/lib/logship-services/influxdb-$INFLUXDB2_VERSION
else
  INFLUXDB2_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/logship-services/influxdb-$INFLUXDB2_VERSION"
fi
INFLUXDB2_BIN="$INFLUXDB2_CACHE/bin/influxd"

influxdb2_config() {
  influxdb_conf "$INFLUXDB2_DIR" 127.0.0.1:8097 127.0.0.1:8096 \
    "auth-enabled = true" "flux-enabled = true" "log-enabled = true"
}

# influxdb2_build: the server binary, built once into the cache (under a lock: two checkouts
# starting at once build it once).
influxdb2_build() {
  [ -x "$INFLUXDB2_BIN" ] && return 0
  command -v go >/dev/null 2>&1 || die "influxdb2: Go is needed once to build InfluxDB $INFLUXDB2_VERSION (go install); it is not on PATH"
  mkdir -p "$INFLUXDB2_CACHE"
  local build_log="$INFLUXDB2_CACHE/build.log"
  (
    exec 8>"$INFLUXDB2_CACHE/.lock"
    flock -w 1200 8 || die "influxdb2: another build holds $INFLUXDB2_CACHE/.lock"
    [ -x "$INFLUXDB2_BIN" ] && exit 0
    log "influxdb2: building InfluxDB $INFLUXDB2_VERSION with go install (once; cached in $INFLUXDB2_CACHE)"
    local t0; t0="$(now)"
    if ! GOBIN="$INFLUXDB2_CACHE/bin.tmp" GOFLAGS=-buildvcs=false \
      go install "github.com/influxdata/influxdb/cmd/influxd@v$INFLUXDB2_VERSION" >"$build_log" 2>&1 8>&-; then
      echo "services: influxdb2: go install failed; tail of $build_log:" >&2
      tail -n 20 "$build_log" >&2
      exit 1
    fi
    mkdir -p "$INFLUXDB2_CACHE/bin"
    mv -f "$INFLUXDB2_CACHE/bin.tmp/influxd" "$INFLUXDB2_BIN"
    rm -rf "$INFLUXDB2_CACHE/bin.tmp"
    log "influxdb2: built in $(( $(now) - t0 )) s"
  )
}

influxdb2_query() { # influxdb2_query [--admin] QUERY: InfluxQL (as the admin with --admin)
  local auth=()
  if [ "$1" = --admin ]; then auth=(-H "Authorization: Token $(cat "$INFLUXDB2_TOKEN")"); shift; fi
  curl -sf -m 10 "${auth[@]}" -XPOST "$INFLUXDB2_EP/query" --data-urlencode "q=$1" >/dev/null
}

# influxdb2_auth: the admin and its token (once per data directory).
influxdb2_auth() {
  [ -f "$INFLUXDB2_DIR/meta/.logship-auth" ] && [ -s "$INFLUXDB2_TOKEN" ] && return 0
  [ -s "$INFLUXDB2_TOKEN" ] || (umask 077 && printf 'admin:%s\n' "$(openssl rand -hex 16)" >"$INFLUXDB2_TOKEN")
  local password; password="$(cut -d: -f2- "$INFLUXDB2_TOKEN")"
  # The first admin may be created without credentials; after that, only by an admin.
  influxdb2_query "CREATE USER admin WITH PASSWORD '$password' WITH ALL PRIVILEGES" ||
    influxdb2_query --admin "SHOW USERS" || return 1
  touch "$INFLUXDB2_DIR/meta/.logship-auth"
}

influxdb2_health() {
  port_open "$INFLUXDB2_EP" || { HEALTH_WHY="nothing accepts TCP connections on $INFLUXDB2_EP"; return 1; }
  curl -sf -m 3 -o /dev/null "$INFLUXDB2_EP/ping" || { HEALTH_WHY="GET $INFLUXDB2_EP/ping did not answer 2xx within 3 s"; return 1; }
  is_local_influxdb2 || return 0
  influxdb2_auth || { HEALTH_WHY="the admin of $INFLUXDB2_EP could not be set up (token in $INFLUXDB2_TOKEN)"; return 1; }
}
influxdb2_running() { pid_alive "$INFLUXDB2_PID" "$INFLUXDB2_DIR/influxdb.conf"; }
influxdb2_start() {
  influxdb2_build
  mkdir -p "$INFLUXDB2_DIR/meta" "$INFLUXDB2_DIR/data" "$INFLUXDB2_DIR/wal"
  influxdb2_config >"$INFLUXDB2_DIR/influxdb.conf"
  spawn "$INFLUXDB2_LOG" "$INFLUXDB2_PID" "$INFLUXDB2_BIN" -config "$INFLUXDB2_DIR/influxdb.conf"
}
influxdb2_stop() { stop_pid "$INFLUXDB2_PID" "$INFLUXDB2_DIR/influxdb.conf" influxdb2; }
influxdb2_wipe() { rm -rf "$INFLUXDB2_DIR/meta" "$INFLUXDB2_DIR/data" "$INFLUXDB2_DIR/wal" "$INFLUXDB2_TOKEN"; }
influxdb2_logfile() { echo "$INFLUXDB2_LOG"; }
