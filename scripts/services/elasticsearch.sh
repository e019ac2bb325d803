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
    pid="$(cat "$d/elasticsearch/es.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then continue; fi
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

es_write_config() {
  mkdir -p "$ES_STATE/config" "$ES_STATE/data" "$ES_STATE/logs" "$ES_STATE/tmp"
  if [ ! -f "$ES_STATE/config/.from" ] || [ "$(cat "$ES_STATE/config/.from")" != "$ES_HOME" ]; then
    cp -r "$ES_HOME/config/." "$ES_STATE/config/"
    echo "$ES_HOME" >"$ES_STATE/config/.from"
    # OpenSearch's jvm.options has paths relative to its (read-only) home.
    sed -i -e "s#=logs/#=$ES_STATE/logs/#g" -e "s#HeapDumpPath=data\$#HeapDumpPath=$ES_STATE/data#" \
      "$ES_STATE/config/jvm.options"
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
  cat >"$ES_STATE/config/$ES_FLAVOR.yml" <<EOF
# generated by scripts/services.sh — edits are overwritten
cluster.name: logship-test
node.name: logship-test-1
network.host: 127.0.0.1
http.port: 9200
transport.port: 9300
discovery.type: single-node
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
path.data: $ES_STATE/data
path.logs: $ES_STATE/logs
$sec
$mmap
EOF
  cat >"$ES_STATE/config/jvm.options.d/logship.options" <<EOF
-Xms$ES_HEAP
-Xmx$ES_HEAP
EOF
  if [ -n "$ES_ROOT" ]; then
    printf '%s\n' "$REPO" >"$ES_ROOT/$ES_KEY/repo"
    chmod 755 "$ES_ROOT" "$ES_ROOT/$ES_KEY"
    chown -R "$ES_USER:" "$ES_STATE"
    ln -sfn "$ES_STATE" "$SV/elasticsearch"
  fi
}

es_ensure_user() {
  [ -n "$ES_ROOT" ] || return 0
  id -u "$ES_USER" >/dev/null 2>&1 && return 0
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --user-group "$ES_USER" 2>/dev/null || id -u "$ES_USER" >/dev/null 2>&1 \
    || die "elasticsearch: could not create user $ES_USER"
}

elasticsearch_start() {
  es_prune_stale
  es_install
  es_ensure_user
  es_write_config
  rm -f "$ES_SERVER_PID"
  local jh; jh="$(java_home)"
  local as_user=()
  [ -n "$ES_ROOT" ] && as_user=(runuser -u "$ES_USER" --)
  if [ "$ES_FLAVOR" = elasticsearch ]; then
    ( cd "$ES_STATE" && spawn "$ES_LOG" "$ES_PID" "${as_user[@]}" env \
        ES_JAVA_HOME="$jh" ES_PATH_CONF="$ES_STATE/config" ES_TMPDIR="$ES_STATE/tmp" \
        ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
        "$ES_HOME/bin/elasticsearch" -p "$ES_SERVER_PID" )
  else
    ( cd "$ES_STATE" && spawn "$ES_LOG" "$ES_PID" "${as_user[@]}" env \
        OPENSEARCH_JAVA_HOME="$jh" JAVA_HOME="$jh" OPENSEARCH_PATH_CONF="$ES_STATE/config" \
        OPENSEARCH_TMPDIR="$ES_STATE/tmp" OPENSEARCH_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP" \
        "$ES_HOME/bin/opensearch" -p "$ES_SERVER_PID" )
  fi
}

elasticsearch_stop() {
  # SIGTERM the server JVM (clean shutdown); the launcher exits with it.
  # Signalling the launcher first would make runuser SIGKILL its child.
  local spid t
  if elasticsearch_running; then
    spid="$(cat "$ES_SERVER_PID" 2>/dev/null || true)"
    if [[ "$spid" =~ ^[0-9]+$ ]] && kill -0 "$spid" 2>/dev/null \
       && tr '\0' ' ' <"/proc/$spid/cmdline" 2>/dev/null | grep -qE 'elasticsearch|opensearch'; then
      term_then_kill "$spid" elasticsearch || true
      # give the launcher a moment to notice and exit by itself
      for ((t = 0; t < 50; t++)); do elasticsearch_running || break; sleep 0.1; done
    fi
  fi
  stop_pid "$ES_PID" "$ES_SERVER_PID" elasticsearch
}
elasticsearch_wipe() { rm -rf "$ES_STATE/data" "$ES_STATE/logs" "$(es_flavor_file)"; }
