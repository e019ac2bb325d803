#!/usr/bin/env bash
# Local test servers for logship: Kafka (KRaft, single node), Elasticsearch,
# etcd, InfluxDB 1.x, InfluxDB 1.8 serving the v2 API (influxdb2), Prometheus Alertmanager — all on 127.0.0.1, installed on first use, state in <repo>/.services/
# (as root, Elasticsearch's distribution and state live under
# /var/lib/logship-services/; <repo>/.services/elasticsearch links to its state).
#
#   scripts/services.sh up     [kafka|elasticsearch|etcd|influxdb|influxdb2|alertmanager ...]  start + wait healthy (idempotent)
#   scripts/services.sh down   [names ...]  stop what this checkout started, keep data
#   scripts/services.sh status [names ...]  print endpoints + health; exit 0 iff all healthy
#   scripts/services.sh reset  [names ...]  stop and wipe data (keeps downloads)
#   scripts/services.sh kill NAME | pause NAME | resume NAME   SIGKILL, SIGSTOP, SIGCONT its process
#   scripts/services.sh stop NAME | start NAME   down, or up and wait until it has caught up
#   scripts/services.sh env    print LOGSHIP_KAFKA=…, LOGSHIP_ES=…, LOGSHIP_ETCD=… for `eval`
#
# Cluster mode (LOGSHIP_CLUSTER=1, scripts/services/cluster.sh): three Kafka brokers kafka-1..3
# (127.0.0.1:9092,19092,29092; replication factor 3, min.insync.replicas 2), three Elasticsearch
# nodes es-1..3 (http://127.0.0.1:9200,9201,9202) and three etcd members etcd-1..3
# (http://127.0.0.1:2379,12379,22379) replace the single nodes while they are up; InfluxDB stays
# one server. `eval "$(LOGSHIP_CLUSTER=1 scripts/services.sh env)"` points the tests at them.
# Secure mode runs on single nodes only.
#
# Endpoints (override to use servers elsewhere; then `up` only checks health):
#   LOGSHIP_KAFKA  default 127.0.0.1:9092
#   LOGSHIP_ES     default http://127.0.0.1:9200
#   LOGSHIP_ETCD   default http://127.0.0.1:2379
#   LOGSHIP_INFLUXDB default http://127.0.0.1:8086
#   LOGSHIP_INFLUXDB2 default http://127.0.0.1:8096 (scripts/services/influxdb2.sh: InfluxDB 1.8's
#                  v2 write and query API, auth on; the token `admin:<password>` in
#                  .services/influxdb2/token)
#   LOGSHIP_ALERTMANAGER default http://127.0.0.1:9193 (scripts/services/alertmanager.sh: every
#                  alert routed to the webhook http://127.0.0.1:9194/, where tests listen)
# Secure mode (LOGSHIP_SECURE=1, scripts/services/esproxy.sh): a CA and certificates under
# .services/pki (ca.crt, server.*, client.*, other-ca.crt) and nginx terminating TLS in front of
# Elasticsearch with basic auth (user logship, password in .services/pki/es-password) or an API
# key (.services/pki/es-api-key):
#   LOGSHIP_ES_SECURE default https://127.0.0.1:9243
# and a second etcd with TLS, client certificates and auth (scripts/services/etcd.sh):
#   LOGSHIP_ETCD_SECURE default https://127.0.0.1:2381
# and a second InfluxDB with TLS and auth (scripts/services/influxdb.sh; users root and logship,
# passwords in .services/pki/influxdb-<user>-password, database logship_sec):
#   LOGSHIP_INFLUXDB_SECURE default https://127.0.0.1:8087
# Knobs: LOGSHIP_SERVICES_TIMEOUT (s, default 300), LOGSHIP_KAFKA_VERSIONS,
#        LOGSHIP_ES_VERSIONS, LOGSHIP_OPENSEARCH_VERSIONS (space-separated, tried in order),
#        LOGSHIP_SERVICES_TAKEOVER=1: `up` stops servers that services.sh started
#        from ANOTHER checkout (else they are reused, and `down` here can't stop them).
#
# Everything comes from Debian (etcd, InfluxDB, kcat, JDK, Maven: see scripts/deps.sh)
# and Maven Central (Kafka jars, Elasticsearch integ-test zip).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SV="$REPO/.services"
RUN="$SV/run"
TIMEOUT="${LOGSHIP_SERVICES_TIMEOUT:-300}"
ALL_SERVICES=(etcd kafka elasticsearch influxdb influxdb2 alertmanager)
# Secure mode: also the TLS + auth front of Elasticsearch (scripts/services/esproxy.sh).
if [ "${LOGSHIP_SECURE:-0}" = 1 ]; then ALL_SERVICES+=(esproxy etcdsec influxsec); fi
# Every service services.sh can start, in the order `up` starts them (`down` stops in reverse).
KNOWN_SERVICES=(etcd etcd-1 etcd-2 etcd-3 kafka kafka-1 kafka-2 kafka-3 elasticsearch es-1 es-2 es-3
  influxdb influxdb2 alertmanager esproxy etcdsec influxsec)

KAFKA_DEFAULT=127.0.0.1:9092
ES_DEFAULT=http://127.0.0.1:9200
ETCD_DEFAULT=http://127.0.0.1:2379
if [ "${LOGSHIP_CLUSTER:-0}" = 1 ]; then
  if [ "${LOGSHIP_SECURE:-0}" = 1 ]; then
    echo "services: secure mode (LOGSHIP_SECURE=1) runs on single nodes; cluster mode (LOGSHIP_CLUSTER=1) is plain: set one of them" >&2
    exit 2
  fi
  ALL_SERVICES=(etcd-1 etcd-2 etcd-3 kafka-1 kafka-2 kafka-3 es-1 es-2 es-3 influxdb alertmanager)
  KAFKA_DEFAULT=127.0.0.1:9092,127.0.0.1:19092,127.0.0.1:29092
  ES_DEFAULT=http://127.0.0.1:9200,http://127.0.0.1:9201,http://127.0.0.1:9202
  ETCD_DEFAULT=http://127.0.0.1:2379,http://127.0.0.1:12379,http://127.0.0.1:22379
  # Nine JVMs and daemons starting at once on a small machine.
  TIMEOUT="${LOGSHIP_SERVICES_TIMEOUT:-600}"
fi
INFLUXDB_DEFAULT=http://127.0.0.1:8086
INFLUXDB2_DEFAULT=http://127.0.0.1:8096
ALERTMANAGER_DEFAULT=http://127.0.0.1:9193
KAFKA_EP="${LOGSHIP_KAFKA:-$KAFKA_DEFAULT}"
ES_EP="${LOGSHIP_ES:-$ES_DEFAULT}"
ETCD_EP="${LOGSHIP_ETCD:-$ETCD_DEFAULT}"
INFLUXDB_EP="${LOGSHIP_INFLUXDB:-$INFLUXDB_DEFAULT}"
INFLUXDB2_EP="${LOGSHIP_INFLUXDB2:-$INFLUXDB2_DEFAULT}"
ALERTMANAGER_EP="${LOGSHIP_ALERTMANAGER:-$ALERTMANAGER_DEFAULT}"

# Newest first; the first that resolves on Maven Central is used (and kept).
KAFKA_VERSIONS="${LOGSHIP_KAFKA_VERSIONS:-4.4.0 4.3.1 4.2.2 4.1.2 4.0.2}"
LOG4J_VERSION=2.24.3
ES_VERSIONS="${LOGSHIP_ES_VERSIONS:-8.19.21 8.19.4 8.18.0 8.17.4}"
OPENSEARCH_VERSIONS="${LOGSHIP_OPENSEARCH_VERSIONS:-2.19.6 2.19.1 2.18.0}"
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

ES_USER=logship-es
ES_HEAP=512m
KAFKA_HEAP=512m

# The code lives in scripts/services/ (common.sh: shared helpers; one file per
# service; static files such as the Elasticsearch GET / plugin source), found
# relative to this script so it works from any directory and any checkout.
SERVICES_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/services"
# shellcheck source-path=SCRIPTDIR source=services/common.sh
source "$SERVICES_LIB/common.sh"
# shellcheck source-path=SCRIPTDIR source=services/etcd.sh
source "$SERVICES_LIB/etcd.sh"
# shellcheck source-path=SCRIPTDIR source=services/kafka.sh
source "$SERVICES_LIB/kafka.sh"
# shellcheck source-path=SCRIPTDIR source=services/elasticsearch.sh
source "$SERVICES_LIB/elasticsearch.sh"
# shellcheck source-path=SCRIPTDIR source=services/esproxy.sh
source "$SERVICES_LIB/esproxy.sh"
# shellcheck source-path=SCRIPTDIR source=services/influxdb.sh
source "$SERVICES_LIB/influxdb.sh"
# shellcheck source-path=SCRIPTDIR source=services/influxdb2.sh
source "$SERVICES_LIB/influxdb2.sh"
# shellcheck source-path=SCRIPTDIR source=services/alertmanager.sh
source "$SERVICES_LIB/alertmanager.sh"
# shellcheck source-path=SCRIPTDIR source=services/cluster.sh
source "$SERVICES_LIB/cluster.sh"

# ---------------------------------------------------------------- commands

SVC_T0=()   # start times, indexed by position in the selected list

select_services() {
  SELECTED=()
  local s
  if [ "$#" -eq 0 ]; then SELECTED=("${ALL_SERVICES[@]}"); return; fi
  for s in "$@"; do
    case "$s" in
      kafka-[123]|es-[123]|etcd-[123]) SELECTED+=("$s") ;;
      # In cluster mode an engine's name stands for its three members.
      kafka) if cluster_mode; then read -ra m <<<"$(members_of kafka)"; SELECTED+=("${m[@]}"); else SELECTED+=(kafka); fi ;;
      elasticsearch|es|opensearch) if cluster_mode; then read -ra m <<<"$(members_of elasticsearch)"; SELECTED+=("${m[@]}"); else SELECTED+=(elasticsearch); fi ;;
      etcd) if cluster_mode; then read -ra m <<<"$(members_of etcd)"; SELECTED+=("${m[@]}"); else SELECTED+=(etcd); fi ;;
      esproxy) SELECTED+=(esproxy) ;;
      etcdsec) SELECTED+=(etcdsec) ;;
      influxdb|influx) SELECTED+=(influxdb) ;;
      influxdb2) SELECTED+=(influxdb2) ;;
      alertmanager) SELECTED+=(alertmanager) ;;
      influxsec) SELECTED+=(influxsec) ;;
      *) die "unknown service '$s' (kafka, elasticsearch, etcd, influxdb, influxdb2, alertmanager, esproxy, etcdsec, influxsec; in cluster mode kafka-N, es-N, etcd-N for N in 1 2 3)" ;;
    esac
  done
}

cmd_up() {
  select_services "$@"
  ensure_tools
  mkdir -p "$RUN"
  local i s ours=() notes=()
  for i in "${!SELECTED[@]}"; do
    s="${SELECTED[$i]}"
    SVC_T0[$i]="$(now)"
    ours[$i]=0
    notes[$i]=""
    clear_the_way "$s"
    if ! is_local "$s"; then
      log "$s: using external endpoint $(endpoint "$s")"
      continue
    fi
    if "${s}_running"; then
      ours[$i]=1   # already started by this checkout: in the mode asked for?
      local want have
      want="$(service_mode "$s")"
      have="$(recorded_mode "$s")"
      if [ "$want" = "$have" ]; then
        notes[$i]="already running"
        continue
      fi
      if [ "$have" = unrecorded ]; then
        log "$s: running without a recorded mode (started by an older services.sh), restarting it in ${want%% *} mode (data kept)"
      elif [ "${want%% *}" != "${have%% *}" ]; then
        log "$s: running in ${have%% *} mode, restarting it in ${want%% *} mode (data kept)"
      else
        log "$s: running with another configuration ($have, now $want), restarting it (data kept)"
      fi
      "${s}_stop"
    fi
    if [ "${LOGSHIP_SERVICES_TAKEOVER:-0}" = 1 ] && [ -n "$(foreign_instances "$s")" ]; then
      takeover "$s"
    elif "${s}_health"; then
      local from; from="$(foreign_instances "$s" | head -n1 | cut -d' ' -f2-)"
      log "$s: already up at $(endpoint "$s") (started ${from:+from $from, }not by this checkout; reusing it)"
      continue
    fi
    "${s}_start"
    record_mode "$s"
    SVC_T0[$i]="$(now)"
    ours[$i]=1
  done
  for i in "${!SELECTED[@]}"; do
    wait_healthy "${SELECTED[$i]}" "${SVC_T0[$i]}" "${ours[$i]}" "${notes[$i]}"
  done
  if cluster_mode && [ "${#SELECTED[@]}" -ge "${#CLUSTER_MEMBERS[@]}" ]; then
    local t0; t0="$(now)"
    until HEALTH_WHY="" && cluster_formed; do
      [ $(( $(now) - t0 )) -lt "$TIMEOUT" ] || die "the clusters did not form within ${TIMEOUT} s: $HEALTH_WHY"
      sleep 1
    done
    log "clusters: Kafka 3 brokers, Elasticsearch 3 nodes, etcd 3 members ($(( $(now) - t0 )) s)"
  fi
}

# clear_the_way NAME: the single node and the cluster members of one engine share ports; before
# NAME starts, stop the others (this checkout's; with LOGSHIP_SERVICES_TAKEOVER=1 also those
# another checkout started).
clear_the_way() {
  local s="$1" other others running=()
  if is_member "$s"; then others="$(engine_of "$s")"; else others="$(members_of "$s")"; fi
  for other in $others; do
    if "${other}_running"; then
      log "$other: stopping it, $s takes its ports (data kept)"
      running+=("$other")
      rm -f "$RUN/$other.mode"
    elif [ "${LOGSHIP_SERVICES_TAKEOVER:-0}" = 1 ] && [ -n "$(foreign_instances "$other")" ]; then
      takeover "$other"
    fi
  done
  if [ "${#running[@]}" -gt 0 ]; then stop_together "${running[@]}"; fi
}

# cmd_start NAME...: up, then wait (bounded) until each has caught up with its cluster.
cmd_start() {
  [ "$#" -ge 1 ] || die "start: which service?"
  cmd_up "$@"
  local s t0
  for s in "${SELECTED[@]}"; do
    declare -F "${s}_settle" >/dev/null || continue
    t0="$(now)"
    until HEALTH_WHY="" && "${s}_settle"; do
      if [ $(( $(now) - t0 )) -ge "$CLUSTER_SETTLE_TIMEOUT" ]; then
        log "$s: WARNING not caught up after $CLUSTER_SETTLE_TIMEOUT s: $HEALTH_WHY"
        continue 2
      fi
      sleep 1
    done
    log "$s: caught up ($(( $(now) - t0 )) s)"
  done
}

# cmd_signal SIGNAL NAME...: send SIGNAL to each service's process (this checkout's).
cmd_signal() {
  local sig="$1" s pid; shift
  [ "$#" -ge 1 ] || die "which service?"
  select_services "$@"
  for s in "${SELECTED[@]}"; do
    declare -F "${s}_pid" >/dev/null || die "$s: no process to signal"
    "${s}_running" || die "$s: not running (from this checkout)"
    pid="$("${s}_pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] || die "$s: no pid recorded"
    kill "-$sig" "$pid" || die "$s: kill -$sig $pid failed"
    log "$s: SIG$sig sent to pid $pid"
    if [ "$sig" = KILL ]; then
      local t
      for ((t = 0; t < 100; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
  done
}

# cmd_env: the addresses of the servers of the mode asked for, for `eval`.
cmd_env() {
  if cluster_mode; then echo "export LOGSHIP_CLUSTER=1"; fi
  echo "export LOGSHIP_KAFKA=$KAFKA_EP"
  echo "export LOGSHIP_ES=$ES_EP"
  echo "export LOGSHIP_ETCD=$ETCD_EP"
  echo "export LOGSHIP_INFLUXDB=$INFLUXDB_EP"
  echo "export LOGSHIP_INFLUXDB2=$INFLUXDB2_EP"
  echo "export LOGSHIP_ALERTMANAGER=$ALERTMANAGER_EP"
}

# stop_together NAME...: stops them all at once (the members of a cluster stopped one after
# another would leave the last without the quorum its clean shutdown waits for).
stop_together() {
  local s pids=()
  for s in "$@"; do "${s}_stop" & pids+=($!); done
  # Only these: the shell's other children are the servers `up` started.
  wait "${pids[@]}"
  for s in "$@"; do log "$s: stopped"; done
}

cmd_down() {
  local all=0
  if [ "$#" -eq 0 ]; then all=1; fi
  select_services "$@"
  local s running=()
  # Without names: every service this checkout started, in whichever mode.
  if [ "$all" = 1 ]; then
    for s in "${KNOWN_SERVICES[@]}"; do
      [[ " ${SELECTED[*]} " == *" $s "* ]] && continue
      if "${s}_running"; then running+=("$s"); fi
      rm -f "$RUN/$s.mode"
    done
  fi
  for s in "${SELECTED[@]}"; do
    rm -f "$RUN/$s.mode"
    if "${s}_running"; then
      running+=("$s")
    else
      "${s}_stop"   # clears stale pid files
      log "$s: not running (from this checkout)"
    fi
  done
  if [ "${#running[@]}" -gt 0 ]; then stop_together "${running[@]}"; fi
}

cmd_reset() {
  cmd_down "$@"
  local s
  for s in "${SELECTED[@]}"; do
    "${s}_wipe"
    log "$s: data wiped"
  done
}

cmd_status() {
  select_services "$@"
  local s rc=0 state who
  for s in "${SELECTED[@]}"; do
    who=""
    if "${s}_running"; then who=" (pid $(cat "$RUN/$s.pid"))";
    elif ! is_local "$s"; then who=" (external)"; fi
    HEALTH_WHY=""
    if "${s}_health"; then state=healthy; else state="DOWN: ${HEALTH_WHY:-health check failed}"; rc=1; fi
    if "${s}_running"; then who="$who [$(recorded_mode "$s")]"; fi
    [ "$s" = elasticsearch ] && [ "$state" = healthy ] && who="$who [$(es_version)]"
    printf '%-14s %-24s %s%s\n' "$s" "$(endpoint "$s")" "$state" "$who"
  done
  return "$rc"
}

usage() { # the header comment
  awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "${BASH_SOURCE[0]}"
}

main() {
  [ "$#" -ge 1 ] || { usage >&2; exit 2; }
  local cmd="$1"; shift
  case "$cmd" in
    up|down|reset|start|stop)
      mkdir -p "$SV"
      # One up/down/reset at a time per checkout.
      exec 9>"$SV/.lock"
      flock -w 300 9 || die "another services.sh is running (lock $SV/.lock)"
      if [ "$cmd" = stop ]; then
        [ "$#" -ge 1 ] || die "stop: which service?"
        cmd="down"
      fi
      "cmd_$cmd" "$@"
      ;;
    kill) cmd_signal KILL "$@" ;;
    pause) cmd_signal STOP "$@" ;;
    resume) cmd_signal CONT "$@" ;;
    env) cmd_env ;;
    status) cmd_status "$@" ;;
    -h|--help|help) usage ;;
    *) echo "services: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
