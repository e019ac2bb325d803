# shellcheck shell=bash
# Prometheus Alertmanager (Debian's `prometheus-alertmanager`) for scripts/services.sh: the API
# on 127.0.0.1:9193 (9093 is Kafka's controller here, 9094 its SASL_SSL listener), clustering
# off, its silences and notification log under .services/alertmanager (kept across down/up),
# and one route: every alert to the webhook http://127.0.0.1:9194/, where the tests that check
# Alertmanager's own notifications listen (issue 30: alerts). Grouping by alertname and the
# alert's labels, sent at once (group_wait 0s) so that a test sees a notification in seconds.
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints and SERVICES_LIB, and
# runs with `set -euo pipefail`); not meant to be run alone.

ALERTMANAGER_DIR="$SV/alertmanager"
ALERTMANAGER_PID="$RUN/alertmanager.pid"
ALERTMANAGER_LOG="$ALERTMANAGER_DIR/alertmanager.log"
ALERTMANAGER_RECEIVER=http://127.0.0.1:9194/

# The configuration it runs with (services.sh records its digest as part of its mode).
alertmanager_config() {
  cat <<YAML
route:
  receiver: tests
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: tests
    webhook_configs:
      - url: '$ALERTMANAGER_RECEIVER'
        send_resolved: true
YAML
}

alertmanager_health() {
  port_open "$ALERTMANAGER_EP" || { HEALTH_WHY="nothing accepts TCP connections on $ALERTMANAGER_EP"; return 1; }
  curl -sf -m 3 -o /dev/null "$ALERTMANAGER_EP/-/ready" || { HEALTH_WHY="GET $ALERTMANAGER_EP/-/ready did not answer 2xx within 3 s"; return 1; }
}
alertmanager_running() { pid_alive "$ALERTMANAGER_PID" "$ALERTMANAGER_DIR/alertmanager.yml"; }
alertmanager_start() {
  mkdir -p "$ALERTMANAGER_DIR/data"
  command -v prometheus-alertmanager >/dev/null 2>&1 ||
    die "alertmanager: prometheus-alertmanager is missing (scripts/deps.sh installs Debian's prometheus-alertmanager)"
  alertmanager_config >"$ALERTMANAGER_DIR/alertmanager.yml"
  spawn "$ALERTMANAGER_LOG" "$ALERTMANAGER_PID" prometheus-alertmanager \
    --config.file="$ALERTMANAGER_DIR/alertmanager.yml" \
    --storage.path="$ALERTMANAGER_DIR/data" \
    --web.listen-address="${ALERTMANAGER_EP#http://}" \
    --cluster.listen-address=
}
alertmanager_stop() { stop_pid "$ALERTMANAGER_PID" "$ALERTMANAGER_DIR/alertmanager.yml" alertmanager; }
alertmanager_wipe() { rm -rf "$ALERTMANAGER_DIR/data"; }
alertmanager_logfile() { echo "$ALERTMANAGER_LOG"; }
