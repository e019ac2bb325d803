# shellcheck shell=bash
# etcd for scripts/services.sh.
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints, versions
# and SERVICES_LIB, and runs with `set -euo pipefail`); not meant to be run alone.

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
