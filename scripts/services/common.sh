# shellcheck shell=bash
# Shared helpers of scripts/services.sh.
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints, versions
# and SERVICES_LIB, and runs with `set -euo pipefail`); not meant to be run alone.

log() { echo "$*"; }
die() { echo "services: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

norm_url() { # add scheme, drop trailing slash, localhost -> 127.0.0.1
  local u="$1"
  case "$u" in http://*|https://*) ;; *) u="http://$u" ;; esac
  u="${u%/}"
  echo "${u/\/\/localhost/\/\/127.0.0.1}"
}
is_local_kafka() { [ "${KAFKA_EP/localhost/127.0.0.1}" = "$KAFKA_DEFAULT" ]; }
is_local_es()    { [ "$(norm_url "$ES_EP")" = "$ES_DEFAULT" ]; }
is_local_etcd()  { [ "$(norm_url "$ETCD_EP")" = "$ETCD_DEFAULT" ]; }
is_local_esproxy() { [ "$ESPROXY_EP" = "$ESPROXY_DEFAULT" ]; }
is_local_etcdsec() { [ "$ETCDSEC_EP" = "$ETCDSEC_DEFAULT" ]; }
is_local_influxdb() { [ "$(norm_url "$INFLUXDB_EP")" = "$INFLUXDB_DEFAULT" ]; }
is_local_influxdb2() { [ "$(norm_url "$INFLUXDB2_EP")" = "$INFLUXDB2_DEFAULT" ]; }
is_local_influxsec() { [ "$INFLUXSEC_EP" = "$INFLUXSEC_DEFAULT" ]; }
is_local_alertmanager() { [ "$(norm_url "$ALERTMANAGER_EP")" = "$ALERTMANAGER_DEFAULT" ]; }
# Cluster members (scripts/services/cluster.sh) are always this project's own.
is_local_member() { true; }
is_local() { "is_local_$(short "$1")"; }
short() { case "$1" in elasticsearch) echo es ;; kafka-*|es-*|etcd-*) echo member ;; *) echo "$1" ;; esac; }
endpoint() { case "$1" in kafka-*|es-*|etcd-*) member_endpoint "$1" ;; kafka) echo "$KAFKA_EP" ;; elasticsearch) echo "$ES_EP" ;; etcd) echo "$ETCD_EP" ;; esproxy) echo "$ESPROXY_EP" ;; etcdsec) echo "$ETCDSEC_EP" ;; influxdb) echo "$INFLUXDB_EP" ;; influxdb2) echo "$INFLUXDB2_EP" ;; influxsec) echo "$INFLUXSEC_EP" ;; alertmanager) echo "$ALERTMANAGER_EP" ;; esac; }

now() { date +%s; }

# port_open HOST:PORT or URL — quick TCP probe so health checks of a stopped
# server fail in milliseconds instead of waiting for client timeouts.
port_open() {
  local hp="${1#*://}"; hp="${hp%%/*}"
  local host="${hp%:*}" port="${hp##*:}"
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# pid_alive PIDFILE MARKER: the pid in PIDFILE runs and its command line
# contains MARKER (guards against pid reuse and against other checkouts).
pid_alive() {
  local f="$1" marker="$2" pid
  [ -s "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# term_then_kill PID NAME: SIGTERM, wait up to 30 s, then SIGKILL (returns 1 if it had to).
term_then_kill() {
  local pid="$1" name="$2" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null || return 0
  log "$name: did not stop in 30 s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  return 1
}

# stop_pid PIDFILE MARKER NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
  local f="$1" marker="$2" name="$3"
  if ! pid_alive "$f" "$marker"; then rm -f "$f"; return 0; fi
  term_then_kill "$(cat "$f")" "$name" || sleep 0.5
  rm -f "$f"
}

# spawn LOGFILE PIDFILE CMD...: detached (own session, no stdin, nohup) so it
# survives the calling shell / CI step; the pid is that of CMD itself.
spawn() {
  local logf="$1" pidf="$2"; shift 2
  # keep logs bounded: one previous generation once past 50 MB
  if [ -f "$logf" ] && [ "$(stat -c %s "$logf")" -gt 52428800 ]; then mv -f "$logf" "$logf.1"; fi
  { echo "=== $(date '+%F %T') start: $*"; } >>"$logf"
  # 9>&-: do not hand our lock file descriptor to the daemon.
  nohup setsid "$@" >>"$logf" 2>&1 </dev/null 9>&- &
  echo $! >"$pidf"
}

fail_start() { # NAME LOGFILE MESSAGE
  echo "services: $1 could not start: $3" >&2
  if [ -z "$2" ] || [ ! -f "$2" ]; then
    echo "services: $1 has no log file${2:+ at $2}: it wrote nothing" >&2
    exit 1
  fi
  # only this run's part of the (appended) log
  local part; part="$(awk '/^=== .* start: /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$2")"
  if [ "$(grep -cv '^=== .* start: ' <<<"$part" || true)" = 0 ]; then
    echo "services: $1 wrote nothing to $2 since it was started${part:+ (${part%%$'\n'*})}" >&2
    exit 1
  fi
  local key; key="$(grep -E 'ERROR|FATAL|Exception|rror:|panic' <<<"$part" | grep -vE '^\s+at ' | head -n 8 || true)"
  if [ -n "$key" ]; then
    echo "---- first errors in $2 ----" >&2
    echo "$key" >&2
  fi
  echo "---- tail of $2 ----" >&2
  tail -n 30 <<<"$part" >&2
  echo "--------------------" >&2
  exit 1
}

# ---------------------------------------------------------------- modes
#
# Each server started here records the mode it was started in ($RUN/NAME.mode): a label
# (kafka: plain or secure; the others: single-node) and, where the service writes its
# configuration from a NAME_config function, a digest of that configuration. `up` compares
# it with the mode asked for now and restarts a server running in another one, keeping its
# data, so the README's commands work in either order.

# service_mode NAME: the mode NAME is asked to run in now, as one line.
service_mode() {
  local s="$1" label=single-node conf=""
  if declare -F "${s}_mode_label" >/dev/null; then label="$("${s}_mode_label")"; fi
  if declare -F "${s}_config" >/dev/null; then
    conf=" config $("${s}_config" | sha256sum | cut -c1-12)"
  fi
  echo "$label$conf"
}
record_mode() { service_mode "$1" >"$RUN/$1.mode"; }
recorded_mode() { cat "$RUN/$1.mode" 2>/dev/null || echo unrecorded; }

mvn_quiet() { # run maven quietly; on failure keep the output in $MVN_LOG
  mvn -B -q -Dstyle.color=never "$@" >"$MVN_LOG" 2>&1
}

java_home() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME"; return; fi
  local j; j="$(readlink -f "$(command -v java)")"
  echo "${j%/bin/java}"
}

ensure_tools() {
  local need=0 t
  for t in java javac mvn kcat etcd etcdctl influxd prometheus-alertmanager curl unzip setsid runuser flock; do
    command -v "$t" >/dev/null 2>&1 || need=1
  done
  if [ "$need" = 1 ]; then
    log "services: installing missing system packages (scripts/deps.sh)"
    bash "$REPO/scripts/deps.sh"
  fi
}

# ---------------------------------------------------------------- other checkouts
#
# A server on our port may have been started by services.sh from another
# checkout (e.g. the developer's tree while CI runs in a fresh clone). `up`
# reuses it, but then `down NAME` from this checkout cannot stop it. With
# LOGSHIP_SERVICES_TAKEOVER=1, `up` stops such an instance and starts its own.

# foreign_instances NAME: "PID CHECKOUT" per instance started from elsewhere
# (for elasticsearch PID is the server JVM's, from its pid file).
foreign_instances() {
  local s="$1" pid args path seen=" "
  while read -r pid args; do
    case "$s" in
      kafka-[123])
        [[ "$args" =~ kafka\.Kafka\ (/[^ ]*)/\.services/cluster/$s/config/server\.properties ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      etcd-[123])
        [[ "$args" =~ ^etcd\ --name\ $s\ --data-dir\ (/[^ ]*)/\.services/cluster/$s/data ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      es-[123])
        [[ "$args" =~ \ -p\ (/[^ ]*/$s/es\.pid) ]] || continue
        path="${BASH_REMATCH[1]}"
        [ "$path" = "$(esmember_state "${s#es-}")/es.pid" ] && continue
        [[ "$seen" == *" $path "* ]] && continue
        seen="$seen$path "
        local mpid mrepo
        mpid="$(cat "$path" 2>/dev/null || true)"
        [[ "$mpid" =~ ^[0-9]+$ ]] && kill -0 "$mpid" 2>/dev/null || continue
        mrepo="$(cat "${path%/"$s"/es.pid}/repo" 2>/dev/null || echo "${path%/.services/cluster/"$s"/es.pid}")"
        echo "$mpid $mrepo" ;;
      kafka)
        [[ "$args" =~ kafka\.Kafka\ (/[^ ]*)/\.services/kafka/config/server\.properties ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      etcdsec)
        [[ "$args" =~ ^etcd\ --name\ logship-secure\ --data-dir\ (/[^ ]*)/\.services/etcdsec/data ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      esproxy)
        [[ "$args" =~ ^nginx:\ master\ process\ nginx\ -c\ (/[^ ]*)/\.services/esproxy/nginx\.conf ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      influxsec)
        [[ "$args" =~ ^influxd\ -config\ (/[^ ]*)/\.services/influxsec/influxdb\.conf ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      alertmanager)
        [[ "$args" =~ ^prometheus-alertmanager\ --config\.file=(/[^ ]*)/\.services/alertmanager/alertmanager\.yml ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      influxdb2)
        [[ "$args" =~ influxd\ -config\ (/[^ ]*)/\.services/influxdb2/influxdb\.conf ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      influxdb)
        [[ "$args" =~ ^influxd\ -config\ (/[^ ]*)/\.services/influxdb/influxdb\.conf ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      etcd)
        [[ "$args" =~ ^etcd\ --name\ logship\ --data-dir\ (/[^ ]*)/\.services/etcd/data ]] || continue
        path="${BASH_REMATCH[1]}"; [ "$path" = "$REPO" ] && continue
        echo "$pid $path" ;;
      elasticsearch)
        [[ "$args" =~ \ -p\ (/[^ ]*/elasticsearch/es\.pid) ]] || continue
        path="${BASH_REMATCH[1]}"
        [ "$path" = "$ES_SERVER_PID" ] && continue
        [[ "$seen" == *" $path "* ]] && continue
        seen="$seen$path "
        local spid repo
        spid="$(cat "$path" 2>/dev/null || true)"
        [[ "$spid" =~ ^[0-9]+$ ]] && kill -0 "$spid" 2>/dev/null || continue
        repo="$(cat "${path%/elasticsearch/es.pid}/repo" 2>/dev/null || echo "${path%/.services/elasticsearch/es.pid}")"
        echo "$spid $repo" ;;
    esac
  done < <(ps -eo pid=,args= 2>/dev/null)
}

takeover() { # NAME: stop instances of NAME started by services.sh elsewhere
  local s="$1" pid dir t
  while read -r pid dir; do
    [ -n "$pid" ] || continue
    log "$s: stopping the instance started from $dir (LOGSHIP_SERVICES_TAKEOVER=1)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((t = 0; t < 300; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done < <(foreign_instances "$s")
  for ((t = 0; t < 50; t++)); do port_open "$(endpoint "$s")" || break; sleep 0.1; done
}

wait_healthy() { # NAME T0 OURS [NOTE] -> waits until healthy, or dies with the log tail
  local s="$1" t0="$2" ours="$3" note="${4:-}" restarts=0
  while :; do
    HEALTH_WHY=""
    SERVES_NOTE=""
    if "${s}_health"; then
      if [ "$ours" = 1 ] && declare -F "${s}_serves" >/dev/null && ! "${s}_serves"; then
        # Up, but it does not serve what the pipeline needs: keep the evidence, restart it
        # (bounded), say so in one line.
        if [ "$restarts" -ge "${KAFKA_SERVE_RESTARTS:-2}" ]; then
          fail_start "$s" "$("${s}_logfile")" "answers but does not serve after $restarts restart(s): $HEALTH_WHY"
        fi
        restarts=$((restarts + 1))
        local dump=""
        if declare -F "${s}_diagnose" >/dev/null; then dump="$("${s}_diagnose")"; fi
        log "$s: answers but does not serve ($HEALTH_WHY)${dump:+; thread dump in $dump}; restarting it (restart $restarts of ${KAFKA_SERVE_RESTARTS:-2})"
        "${s}_stop"
        "${s}_start"
        record_mode "$s"
        t0="$(now)"
        continue
      fi
      local extra=""
      [ "$s" = elasticsearch ] && extra=" [$(es_version)]"
      log "$s: up at $(endpoint "$s")$extra (${note:-$(( $(now) - t0 )) s}${SERVES_NOTE:+; $SERVES_NOTE})"
      return 0
    fi
    if [ "$ours" = 1 ] && ! "${s}_running"; then
      fail_start "$s" "$("${s}_logfile")" "process exited"
    fi
    if [ $(( $(now) - t0 )) -ge "$TIMEOUT" ]; then
      if [ "$ours" = 1 ]; then
        fail_start "$s" "$("${s}_logfile")" "not healthy at $(endpoint "$s") after ${TIMEOUT} s: ${HEALTH_WHY:-its health check failed}"
      fi
      die "$s: not healthy at $(endpoint "$s") after ${TIMEOUT} s (external endpoint): ${HEALTH_WHY:-its health check failed}"
    fi
    sleep 1
  done
}
