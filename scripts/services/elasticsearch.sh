# shellcheck shell=bash
# Elasticsearch (or the OpenSearch fallback) for scripts/services.sh.
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints, versions
# and SERVICES_LIB, and runs with `set -euo pipefail`); not meant to be run alone.

# ---------------------------------------------------------------- elasticsearch
#
# Elasticsearch refuses to run as root, so as root it runs as the system user
# logship-es. That user must be able to traverse every parent of its install,
# config and data directories — which a checkout inside `mktemp -d` (mode 0700,
# owned by root) does not allow. So, as root, the unpacked distribution and the
# per-checkout state (config, data, logs) live under /var/lib/logship-services/
# (world-traversable, owned by logship-es where ES writes): the distribution is
# shared by all checkouts (read-only), the state dir is keyed by a hash of the
# checkout path, and <repo>/.services/elasticsearch is a symlink to it. State
# dirs of checkouts that no longer exist are pruned on `up`. Without root, ES
# runs as the calling user with everything inside .services/.

ES_PID="$RUN/elasticsearch.pid"   # the launcher (runuser/bin/elasticsearch)
ES_ZIPS="$SV/downloads"
if [ "$(id -u)" = 0 ]; then
  ES_ROOT=/var/lib/logship-services
  ES_KEY="$(printf '%s' "$REPO" | sha256sum | cut -c1-12)"
  ES_STATE="$ES_ROOT/$ES_KEY/elasticsearch"
  ES_DISTS="$ES_ROOT/dist"
else
  ES_ROOT=""
  ES_STATE="$SV/elasticsearch"
  ES_DISTS="$SV/elasticsearch-dist"
fi
ES_LOG="$ES_STATE/logs/stdout.log"
ES_SERVER_PID="$ES_STATE/es.pid"    # the server JVM, written by Elasticsearch

es_flavor_file() { echo "$SV/elasticsearch.dist"; }   # "<flavor> <version> <home>"

es_health() {
  local out
  port_open "$(norm_url "$ES_EP")" || { HEALTH_WHY="nothing accepts TCP connections on $(norm_url "$ES_EP")"; return 1; }
  out="$(curl -s -m 8 "$(norm_url "$ES_EP")/_cluster/health?wait_for_status=yellow&timeout=3s" 2>/dev/null)" \
    || { HEALTH_WHY="GET $(norm_url "$ES_EP")/_cluster/health did not answer within 8 s"; return 1; }
  grep -qE '"status" *: *"(green|yellow)"' <<<"$out" \
    || { HEALTH_WHY="GET $(norm_url "$ES_EP")/_cluster/health answered without green or yellow: ${out:0:200}"; return 1; }
}
es_version() { # best effort, for messages
  curl -s -m 5 "$(norm_url "$ES_EP")/_nodes/_local?filter_path=nodes.*.version" 2>/dev/null \
    | sed -n 's/.*"version":"\([^"]*\)".*/\1/p'
}
elasticsearch_health() { es_health; }
elasticsearch_running() { pid_alive "$ES_PID" "$ES_SERVER_PID"; }
elasticsearch_logfile() { echo "$ES_LOG"; }   # console output: has the errors too

es_prune_stale() { # state dirs of checkouts that were deleted
  [ -n "$ES_ROOT" ] && [ -d "$ES_ROOT" ] || return 0
  local d repo pid
  for d in "$ES_ROOT"/*/; do
    d="${d%/}"
    [ "$d" = "$ES_DISTS" ] && continue
    [ -f "$d/repo" ] || continue
    repo="$(cat "$d/repo")"
    [ -d "$repo" ] && continue
    local alive=0 f
    for f in "$d"/*/es.pid; do
      pid="$(cat "$f" 2>/dev/null || true)"
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    [ "$alive" = 1 ] && continue
    rm -rf "$d"
  done
}

# Fetch + unpack the distribution. Sets ES_FLAVOR, ES_VERSION, ES_HOME.
es_install() {
  local ff; ff="$(es_flavor_file)"
  if [ -s "$ff" ]; then
    read -r ES_FLAVOR ES_VERSION ES_HOME <"$ff"
    # keep the chosen distribution while it is installed and still listed
    if [ -f "$ES_HOME/.complete" ] && { [[ " $ES_VERSIONS " == *" $ES_VERSION "* ]] \
         || [ "$ES_FLAVOR" = opensearch ]; }; then
      return 0
    fi
  fi
  # Another checkout may already have unpacked a version we would pick.
  local v flavor home zip=""
  for v in $ES_VERSIONS; do
    if [ -f "$ES_DISTS/elasticsearch-$v/.complete" ]; then
      ES_FLAVOR=elasticsearch ES_VERSION=$v ES_HOME="$ES_DISTS/elasticsearch-$v"
      echo "$ES_FLAVOR $ES_VERSION $ES_HOME" >"$ff"; return 0
    fi
  done
  mkdir -p "$ES_ZIPS"
  MVN_LOG="$ES_ZIPS/mvn.log"
  for v in $ES_VERSIONS; do
    if [ -f "$ES_ZIPS/elasticsearch-$v.zip" ]; then zip="$ES_ZIPS/elasticsearch-$v.zip"; flavor=elasticsearch; break; fi
  done
  if [ -z "$zip" ]; then
    log "elasticsearch: downloading distribution (first run)…"
    for v in $ES_VERSIONS; do
      if (cd "$ES_ZIPS" && mvn_quiet "$DEP_PLUGIN:copy" \
           -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$v:zip" \
           -DoutputDirectory="$ES_ZIPS"); then
        zip="$ES_ZIPS/elasticsearch-$v.zip"; flavor=elasticsearch; break
      fi
      log "elasticsearch: $v did not resolve, trying the next version"
    done
  fi
  if [ -z "$zip" ]; then
    log "elasticsearch: WARNING no Elasticsearch 8.x zip resolved; FALLING BACK TO OPENSEARCH"
    for v in $OPENSEARCH_VERSIONS; do
      if [ -f "$ES_ZIPS/opensearch-$v.zip" ] || (cd "$ES_ZIPS" && mvn_quiet "$DEP_PLUGIN:copy" \
           -Dartifact="org.opensearch.distribution.integ-test-zip:opensearch:$v:zip" \
           -DoutputDirectory="$ES_ZIPS"); then
        zip="$ES_ZIPS/opensearch-$v.zip"; flavor=opensearch; break
      fi
    done
  fi
  if [ -z "$zip" ]; then
    echo "services: elasticsearch: neither Elasticsearch [$ES_VERSIONS] nor OpenSearch [$OPENSEARCH_VERSIONS] resolved; maven output:" >&2
    tail -n 30 "$MVN_LOG" >&2; exit 1
  fi
  home="$ES_DISTS/$flavor-$v"
  if [ ! -f "$home/.complete" ]; then
    log "elasticsearch: unpacking $flavor $v"
    mkdir -p "$ES_DISTS"
    [ -n "$ES_ROOT" ] && chmod 755 "$ES_ROOT" "$ES_DISTS"
    local tmp; tmp="$(mktemp -d "$ES_DISTS/.unpack.XXXXXX")"
    unzip -q "$zip" -d "$tmp"
    rm -rf "$home"
    mv "$tmp/$flavor-$v" "$home"
    rmdir "$tmp"
    chmod -R a+rX "$home"
    if [ "$flavor" = elasticsearch ]; then es_build_root_plugin "$home" "$v"; fi
    touch "$home/.complete"
  fi
  ES_FLAVOR=$flavor ES_VERSION=$v ES_HOME="$home"
  echo "$ES_FLAVOR $ES_VERSION $ES_HOME" >"$ff"
}

# The integ-test zip lacks the `rest-root` module, so `GET /` (client.info())
# and `HEAD /` (client.ping()) answer 405. This tiny plugin, compiled against
# the distribution's own jars, restores them. Best effort: skipped with a
# warning if it does not compile against this version. Its source is
# es-root-plugin/ next to this file; it is built once, when es_install unpacks
# a distribution (nothing tracks the source: to rebuild after editing it,
# delete that unpacked distribution).
es_build_root_plugin() {
  local home="$1" v="$2" b; b="$(mktemp -d)"
  mkdir -p "$b/src/logship/esroot" "$b/classes"
  cp "$SERVICES_LIB/es-root-plugin/src/logship/esroot/RestRootPlugin.java" "$b/src/logship/esroot/"
  if javac -nowarn --release 17 -cp "$home/lib/*" -d "$b/classes" \
       "$b/src/logship/esroot/RestRootPlugin.java" >"$b/javac.log" 2>&1; then
    local p="$home/plugins/logship-rest-root"
    mkdir -p "$p"
    jar cf "$p/logship-rest-root.jar" -C "$b/classes" .
    cat >"$p/plugin-descriptor.properties" <<EOF
description=GET / and HEAD / for the integ-test distribution (logship scripts/services.sh)
version=$v
name=logship-rest-root
classname=logship.esroot.RestRootPlugin
java.version=17
elasticsearch.version=$v
EOF
    chmod -R a+rX "$p"
  else
    log "elasticsearch: WARNING could not build the GET / plugin for $v (GET / and HEAD / will answer 405):"
    head -n 5 "$b/javac.log"
  fi
  rm -rf "$b"
}

# es_write_config_at STATE LINK: the configuration of one node whose state (config, data, logs)
# is STATE, linked from LINK as root; the node's own settings (name, ports, discovery) come on
# standard input as YAML lines.
es_write_config_at() {
  local state="$1" link="$2" own
  own="$(cat)"
  mkdir -p "$state/config" "$state/data" "$state/logs" "$state/tmp"
  if [ ! -f "$state/config/.from" ] || [ "$(cat "$state/config/.from")" != "$ES_HOME" ]; then
    cp -r "$ES_HOME/config/." "$state/config/"
    echo "$ES_HOME" >"$state/config/.from"
    # OpenSearch's jvm.options has paths relative to its (read-only) home.
    sed -i -e "s#=logs/#=$state/logs/#g" -e "s#HeapDumpPath=data\$#HeapDumpPath=$state/data#" \
      "$state/config/jvm.options"
  fi
  local mmap=""
  if [ "$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)" -lt 262144 ]; then
    # vm.max_map_count too low for mmapfs and a container cannot raise it.
    mmap="node.store.allow_mmap: false"
  fi
  local sec=""
  if [ "$ES_FLAVOR" = elasticsearch ] && [ -d "$ES_HOME/modules/x-pack-security" ]; then
    sec="xpack.security.enabled: false"
  fi
  cat >"$state/config/$ES_FLAVOR.yml" <<EOF
# generated by scripts/services.sh — edits are overwritten
$own
network.host: 127.0.0.1
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
path.data: $state/data
path.logs: $state/logs
$sec
$mmap
EOF
  cat >"$state/config/jvm.options.d/logship.options" <<EOF
-Xms$ES_HEAP
-Xmx$ES_HEAP
EOF
  if [ -n "$ES_ROOT" ]; then
    printf '%s\n' "$REPO" >"$ES_ROOT/$ES_KEY/repo"
    chmod 755 "$ES_ROOT" "$ES_ROOT/$ES_KEY"
    chown -R "$ES_USER:" "$state"
    mkdir -p "$(dirname "$link")"
    ln -sfn "$state" "$link"
  fi
}

es_write_config() {
  es_write_config_at "$ES_STATE" "$SV/elasticsearch" <<EOF
cluster.name: logship-test
node.name: logship-test-1
http.port: 9200
transport.port: 9300
discovery.type: single-node
EOF
}

es_ensure_user() {
  [ -n "$ES_ROOT" ] || return 0
  id -u "$ES_USER" >/dev/null 2>&1 && return 0
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --user-group "$ES_USER" 2>/dev/null || id -u "$ES_USER" >/dev/null 2>&1 \
    || die "elasticsearch: could not create user $ES_USER"
}

# es_spawn_at STATE PIDFILE: starts the node configured in STATE (the launcher's pid in PIDFILE,
# the server JVM's in STATE/es.pid, console output in STATE/logs/stdout.log).
es_spawn_at() {
  local state="$1" pidf="$2"
  rm -f "$state/es.pid"
  local jh; jh="$(java_home)"
  local as_user=()
  [ -n "$ES_ROOT" ] && as_user=(runuser -u "$ES_USER" --)
  if [ "$ES_FLAVOR" = elasticsearch ]; then
    ( cd "$state" && spawn "$state/logs/stdout.log" "$pidf" "${as_user[@]}" env \
        ES_JAVA_HOME="$jh" ES_PATH_CONF="$state/config" ES_TMPDIR="$state/tmp" \
        ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
        "$ES_HOME/bin/elasticsearch" -p "$state/es.pid" )
  else
    ( cd "$state" && spawn "$state/logs/stdout.log" "$pidf" "${as_user[@]}" env \
        OPENSEARCH_JAVA_HOME="$jh" JAVA_HOME="$jh" OPENSEARCH_PATH_CONF="$state/config" \
        OPENSEARCH_TMPDIR="$state/tmp" OPENSEARCH_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
        "$ES_HOME/bin/opensearch" -p "$state/es.pid" )
  fi
}

elasticsearch_start() {
  es_prune_stale
  es_install
  es_ensure_user
  es_write_config
  es_spawn_at "$ES_STATE" "$ES_PID"
}

# es_stop_at STATE PIDFILE NAME: SIGTERM the server JVM (clean shutdown); the launcher exits
# with it. Signalling the launcher first would make runuser SIGKILL its child.
es_stop_at() {
  local state="$1" pidf="$2" name="$3" spid t
  if pid_alive "$pidf" "$state/es.pid"; then
    spid="$(cat "$state/es.pid" 2>/dev/null || true)"
    if [[ "$spid" =~ ^[0-9]+$ ]] && kill -0 "$spid" 2>/dev/null \
       && tr '\0' ' ' <"/proc/$spid/cmdline" 2>/dev/null | grep -qE 'elasticsearch|opensearch'; then
      term_then_kill "$spid" "$name" || true
      # give the launcher a moment to notice and exit by itself
      for ((t = 0; t < 50; t++)); do pid_alive "$pidf" "$state/es.pid" || break; sleep 0.1; done
    fi
  fi
  stop_pid "$pidf" "$state/es.pid" "$name"
}
elasticsearch_stop() { es_stop_at "$ES_STATE" "$ES_PID" elasticsearch; }
# The process a SIGKILL or SIGSTOP is meant for: the server JVM.
elasticsearch_pid() { cat "$ES_SERVER_PID" 2>/dev/null; }
elasticsearch_wipe() { rm -rf "$ES_STATE/data" "$ES_STATE/logs" "$(es_flavor_file)"; }
