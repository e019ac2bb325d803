#!/usr/bin/env bash
# Local test servers for logship: Kafka (KRaft, single node), Elasticsearch,
# etcd — all on 127.0.0.1, installed on first use, state in <repo>/.services/.
#
#   scripts/services.sh up     [kafka|elasticsearch|etcd ...]  start + wait healthy (idempotent)
#   scripts/services.sh down   [names ...]  stop what this checkout started, keep data
#   scripts/services.sh status [names ...]  print endpoints + health; exit 0 iff all healthy
#   scripts/services.sh reset  [names ...]  stop and wipe data (keeps downloads)
#
# Endpoints (override to use servers elsewhere; then `up` only checks health):
#   LOGSHIP_KAFKA  default 127.0.0.1:9092
#   LOGSHIP_ES     default http://127.0.0.1:9200
#   LOGSHIP_ETCD   default http://127.0.0.1:2379
# Knobs: LOGSHIP_SERVICES_TIMEOUT (s, default 120), LOGSHIP_KAFKA_VERSIONS,
#        LOGSHIP_ES_VERSIONS, LOGSHIP_OPENSEARCH_VERSIONS (space-separated, tried in order),
#        LOGSHIP_SERVICES_TAKEOVER=1: `up` stops servers that services.sh started
#        from ANOTHER checkout (else they are reused, and `down` here can't stop them).
#
# Everything comes from Debian (etcd, kcat, JDK, Maven: see scripts/deps.sh)
# and Maven Central (Kafka jars, Elasticsearch integ-test zip).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
SV="$REPO/.services"
RUN="$SV/run"
TIMEOUT="${LOGSHIP_SERVICES_TIMEOUT:-300}"
ALL_SERVICES=(etcd kafka elasticsearch)

KAFKA_DEFAULT=127.0.0.1:9092
ES_DEFAULT=http://127.0.0.1:9200
ETCD_DEFAULT=http://127.0.0.1:2379
KAFKA_EP="${LOGSHIP_KAFKA:-$KAFKA_DEFAULT}"
ES_EP="${LOGSHIP_ES:-$ES_DEFAULT}"
ETCD_EP="${LOGSHIP_ETCD:-$ETCD_DEFAULT}"

# Newest first; the first that resolves on Maven Central is used (and kept).
KAFKA_VERSIONS="${LOGSHIP_KAFKA_VERSIONS:-4.4.0 4.3.1 4.2.2 4.1.2 4.0.2}"
LOG4J_VERSION=2.24.3
ES_VERSIONS="${LOGSHIP_ES_VERSIONS:-8.19.21 8.19.4 8.18.0 8.17.4}"
OPENSEARCH_VERSIONS="${LOGSHIP_OPENSEARCH_VERSIONS:-2.19.6 2.19.1 2.18.0}"
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

ES_USER=logship-es
ES_HEAP=512m
KAFKA_HEAP=512m

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
is_local() { "is_local_$(short "$1")"; }
short() { case "$1" in elasticsearch) echo es ;; *) echo "$1" ;; esac; }
endpoint() { case "$1" in kafka) echo "$KAFKA_EP" ;; elasticsearch) echo "$ES_EP" ;; etcd) echo "$ETCD_EP" ;; esac; }

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

# stop_pid PIDFILE MARKER NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
  local f="$1" marker="$2" name="$3" pid i
  if ! pid_alive "$f" "$marker"; then rm -f "$f"; return 0; fi
  pid="$(cat "$f")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: did not stop in 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
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
  if [ -n "$2" ] && [ -f "$2" ]; then
    # only this run's part of the (appended) log
    local part; part="$(awk '/^=== .* start: /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$2")"
    local key; key="$(grep -E 'ERROR|FATAL|Exception|rror:|panic' <<<"$part" | grep -vE '^\s+at ' | head -n 8 || true)"
    if [ -n "$key" ]; then
      echo "---- first errors in $2 ----" >&2
      echo "$key" >&2
    fi
    echo "---- tail of $2 ----" >&2
    tail -n 30 <<<"$part" >&2
    echo "--------------------" >&2
  fi
  exit 1
}

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
  for t in java javac mvn kcat etcd etcdctl curl unzip setsid runuser flock; do
    command -v "$t" >/dev/null 2>&1 || need=1
  done
  if [ "$need" = 1 ]; then
    log "services: installing missing system packages (scripts/deps.sh)"
    bash "$REPO/scripts/deps.sh"
  fi
}

# ---------------------------------------------------------------- etcd

ETCD_DIR="$SV/etcd"
ETCD_PID="$RUN/etcd.pid"
ETCD_LOG="$ETCD_DIR/etcd.log"

etcd_health() {
  port_open "$ETCD_EP" || return 1
  ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_EP" --dial-timeout=2s --command-timeout=3s \
    endpoint health >/dev/null 2>&1
}
etcd_running() { pid_alive "$ETCD_PID" "$ETCD_DIR/data"; }
etcd_start() {
  mkdir -p "$ETCD_DIR/data"
  chmod 700 "$ETCD_DIR/data"
  local arch_env=()
  case "$(uname -m)" in x86_64|amd64) ;; *) arch_env=(env "ETCD_UNSUPPORTED_ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)") ;; esac
  spawn "$ETCD_LOG" "$ETCD_PID" "${arch_env[@]}" etcd \
    --name logship \
    --data-dir "$ETCD_DIR/data" \
    --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster logship=http://127.0.0.1:2380 \
    --initial-cluster-state new \
    --logger zap --log-outputs stderr
}
etcd_stop() { stop_pid "$ETCD_PID" "$ETCD_DIR/data" etcd; }
etcd_wipe() { rm -rf "$ETCD_DIR/data"; }
etcd_logfile() { echo "$ETCD_LOG"; }

# ---------------------------------------------------------------- kafka

KAFKA_DIR="$SV/kafka"
KAFKA_JARS="$KAFKA_DIR/jars"
KAFKA_PID="$RUN/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_CONF="$KAFKA_DIR/config"
KAFKA_HEALTH_TOPIC=_logship_health

kafka_install() {
  [ -f "$KAFKA_JARS/.complete" ] && return 0
  log "kafka: downloading jars (first run)…"
  local build="$SV/kafka-build" v ok=""
  mkdir -p "$build"
  MVN_LOG="$build/mvn.log"
  for v in $KAFKA_VERSIONS; do
    cat >"$build/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>logship.services</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$v</version></dependency>
    <!-- Kafka 4 logs through slf4j 1.7 -> log4j2 -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
    rm -rf "$KAFKA_JARS.tmp"
    if mvn_quiet -f "$build/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
         -DincludeScope=runtime -DoutputDirectory="$KAFKA_JARS.tmp"; then
      ok="$v"; break
    fi
    log "kafka: $v did not resolve, trying the next version"
  done
  if [ -z "$ok" ]; then
    echo "services: kafka: no version of [$KAFKA_VERSIONS] resolved; maven output:" >&2
    tail -n 30 "$MVN_LOG" >&2; exit 1
  fi
  rm -rf "$KAFKA_JARS"
  mv "$KAFKA_JARS.tmp" "$KAFKA_JARS"
  echo "$ok" >"$KAFKA_JARS/.complete"
}

kafka_java() { # java with Kafka's classpath and our log4j2 config
  java -Dlog4j2.configurationFile="$KAFKA_CONF/log4j2.properties" -cp "$KAFKA_JARS/*" "$@"
}

kafka_write_config() {
  mkdir -p "$KAFKA_CONF" "$KAFKA_DIR/data"
  cat >"$KAFKA_CONF/server.properties" <<EOF
# generated by scripts/services.sh — edits are overwritten
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=4
default.replication.factor=1
auto.create.topics.enable=true
# Room for the agent's largest record (a 1 MiB line can grow to ~6 MiB of JSON).
message.max.bytes=16777216
replica.fetch.max.bytes=16777216
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$KAFKA_CONF/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
EOF
}

kafka_health() {
  local token out
  port_open "${KAFKA_EP%%,*}" || return 1
  timeout 10 kcat -b "$KAFKA_EP" -L -m 5 2>/dev/null | grep -qE '^ *[1-9][0-9]* brokers?:' || return 1
  # Real round trip: produce one message and read it back (auto-creates the topic). The
  # producer is idempotent, as logship's are: a freshly started broker can take minutes to
  # hand out its first producer ids, and a server that cannot do that yet is not up for us.
  token="health-$$-$(date +%s%N)"
  echo "$token" | timeout 15 kcat -b "$KAFKA_EP" -P -t "$KAFKA_HEALTH_TOPIC" -p 0 \
    -X enable.idempotence=true -X message.timeout.ms=10000 >/dev/null 2>&1 || return 1
  out="$(timeout 15 kcat -b "$KAFKA_EP" -C -t "$KAFKA_HEALTH_TOPIC" -p 0 -o -20 -e -q \
    -X fetch.wait.max.ms=100 2>/dev/null)" || return 1
  grep -qxF "$token" <<<"$out"
}
kafka_running() { pid_alive "$KAFKA_PID" "$KAFKA_CONF/server.properties"; }
kafka_start() {
  kafka_install
  kafka_write_config
  mkdir -p "$KAFKA_DIR"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    [ -s "$KAFKA_DIR/cluster.id" ] || kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$KAFKA_DIR/cluster.id"
    if ! kafka_java kafka.tools.StorageTool format --ignore-formatted \
         -t "$(cat "$KAFKA_DIR/cluster.id")" -c "$KAFKA_CONF/server.properties" >>"$KAFKA_LOG" 2>&1; then
      fail_start kafka "$KAFKA_LOG" "storage format failed"
    fi
  fi
  spawn "$KAFKA_LOG" "$KAFKA_PID" java -Xms$KAFKA_HEAP -Xmx$KAFKA_HEAP -XX:+UseG1GC \
    -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_CONF/log4j2.properties" \
    -cp "$KAFKA_JARS/*" kafka.Kafka "$KAFKA_CONF/server.properties"
}
kafka_stop() { stop_pid "$KAFKA_PID" "$KAFKA_CONF/server.properties" kafka; }
kafka_wipe() { rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/cluster.id"; }
kafka_logfile() { echo "$KAFKA_LOG"; }

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
  port_open "$(norm_url "$ES_EP")" || return 1
  out="$(curl -s -m 8 "$(norm_url "$ES_EP")/_cluster/health?wait_for_status=yellow&timeout=3s" 2>/dev/null)" || return 1
  grep -qE '"status" *: *"(green|yellow)"' <<<"$out"
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
# warning if it does not compile against this version.
es_build_root_plugin() {
  local home="$1" v="$2" b; b="$(mktemp -d)"
  mkdir -p "$b/src/logship/esroot" "$b/classes"
  cat >"$b/src/logship/esroot/RestRootPlugin.java" <<'EOF'
package logship.esroot;

import java.util.Collection;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.bytes.BytesArray;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

/** GET / and HEAD / like the rest-root module of the full distribution. */
public class RestRootPlugin extends Plugin implements ActionPlugin {
    private volatile ClusterService clusterService;

    @Override
    public Collection<?> createComponents(PluginServices services) {
        clusterService = services.clusterService();
        return List.of();
    }

    @Override
    public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry registry,
            RestController restController, ClusterSettings clusterSettings,
            IndexScopedSettings indexScopedSettings, SettingsFilter settingsFilter,
            IndexNameExpressionResolver resolver, Supplier<DiscoveryNodes> nodes,
            Predicate<NodeFeature> clusterSupportsFeature) {
        return List.of(new BaseRestHandler() {
            @Override
            public String getName() {
                return "logship_rest_root";
            }

            @Override
            public List<Route> routes() {
                return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
            }

            @Override
            protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
                return channel -> {
                    if (request.method() == RestRequest.Method.HEAD) {
                        channel.sendResponse(new RestResponse(RestStatus.OK, "application/json", BytesArray.EMPTY));
                        return;
                    }
                    Build build = Build.current();
                    XContentBuilder b = channel.newBuilder();
                    b.startObject();
                    b.field("name", clusterService.getNodeName());
                    b.field("cluster_name", clusterService.getClusterName().value());
                    b.field("cluster_uuid", clusterService.state().metadata().clusterUUID());
                    b.startObject("version");
                    b.field("number", build.version());
                    b.field("build_flavor", build.flavor());
                    b.field("build_type", build.type().displayName());
                    b.field("build_hash", build.hash());
                    b.field("build_date", build.date());
                    b.field("build_snapshot", build.isSnapshot());
                    b.field("lucene_version", org.apache.lucene.util.Version.LATEST.toString());
                    b.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
                    b.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
                    b.endObject();
                    b.field("tagline", "You Know, for Search");
                    b.endObject();
                    channel.sendResponse(new RestResponse(RestStatus.OK, b));
                };
            }
        });
    }
}
EOF
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
      kill -TERM "$spid" 2>/dev/null || true
      for ((t = 0; t < 300; t++)); do
        kill -0 "$spid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$spid" 2>/dev/null; then
        log "elasticsearch: did not stop in 30 s, sending SIGKILL"
        kill -KILL "$spid" 2>/dev/null || true
      fi
      # give the launcher a moment to notice and exit by itself
      for ((t = 0; t < 50; t++)); do elasticsearch_running || break; sleep 0.1; done
    fi
  fi
  stop_pid "$ES_PID" "$ES_SERVER_PID" elasticsearch
}
elasticsearch_wipe() { rm -rf "$ES_STATE/data" "$ES_STATE/logs" "$(es_flavor_file)"; }

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
      kafka)
        [[ "$args" =~ kafka\.Kafka\ (/[^ ]*)/\.services/kafka/config/server\.properties ]] || continue
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

# ---------------------------------------------------------------- commands

SVC_T0=()   # start times, indexed by position in the selected list

select_services() {
  SELECTED=()
  local s
  if [ "$#" -eq 0 ]; then SELECTED=("${ALL_SERVICES[@]}"); return; fi
  for s in "$@"; do
    case "$s" in
      kafka) SELECTED+=(kafka) ;;
      elasticsearch|es|opensearch) SELECTED+=(elasticsearch) ;;
      etcd) SELECTED+=(etcd) ;;
      *) die "unknown service '$s' (kafka, elasticsearch, etcd)" ;;
    esac
  done
}

wait_healthy() { # NAME T0 OURS [NOTE] -> waits until healthy, or dies with the log tail
  local s="$1" t0="$2" ours="$3" note="${4:-}"
  while :; do
    if "${s}_health"; then
      local extra=""
      [ "$s" = elasticsearch ] && extra=" [$(es_version)]"
      log "$s: up at $(endpoint "$s")$extra (${note:-$(( $(now) - t0 )) s})"
      return 0
    fi
    if [ "$ours" = 1 ] && ! "${s}_running"; then
      fail_start "$s" "$("${s}_logfile")" "process exited"
    fi
    if [ $(( $(now) - t0 )) -ge "$TIMEOUT" ]; then
      if [ "$ours" = 1 ]; then
        fail_start "$s" "$("${s}_logfile")" "not healthy at $(endpoint "$s") after ${TIMEOUT} s"
      fi
      die "$s: not healthy at $(endpoint "$s") after ${TIMEOUT} s (external endpoint)"
    fi
    sleep 1
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
    if ! is_local "$s"; then
      log "$s: using external endpoint $(endpoint "$s")"
      continue
    fi
    if "${s}_running"; then
      ours[$i]=1   # already started by this checkout; just (re)check health
      notes[$i]="already running"
      continue
    fi
    if [ "${LOGSHIP_SERVICES_TAKEOVER:-0}" = 1 ] && [ -n "$(foreign_instances "$s")" ]; then
      takeover "$s"
    elif "${s}_health"; then
      local from; from="$(foreign_instances "$s" | head -n1 | cut -d' ' -f2-)"
      log "$s: already up at $(endpoint "$s") (started ${from:+from $from, }not by this checkout; reusing it)"
      continue
    fi
    "${s}_start"
    SVC_T0[$i]="$(now)"
    ours[$i]=1
  done
  for i in "${!SELECTED[@]}"; do
    wait_healthy "${SELECTED[$i]}" "${SVC_T0[$i]}" "${ours[$i]}" "${notes[$i]}"
  done
}

cmd_down() {
  select_services "$@"
  local s i
  for ((i = ${#SELECTED[@]} - 1; i >= 0; i--)); do
    s="${SELECTED[$i]}"
    if "${s}_running"; then
      "${s}_stop"
      log "$s: stopped"
    else
      "${s}_stop"   # clears stale pid files
      log "$s: not running (from this checkout)"
    fi
  done
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
    if "${s}_health"; then state=healthy; else state=DOWN; rc=1; fi
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
    up|down|reset)
      mkdir -p "$SV"
      # One up/down/reset at a time per checkout.
      exec 9>"$SV/.lock"
      flock -w 300 9 || die "another services.sh is running (lock $SV/.lock)"
      "cmd_$cmd" "$@"
      ;;
    status) cmd_status "$@" ;;
    -h|--help|help) usage ;;
    *) echo "services: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
  esac
}

main "$@"
