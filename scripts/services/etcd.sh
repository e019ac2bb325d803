# shellcheck shell=bash
# etcd for scripts/services.sh.
# Sourced by scripts/services.sh (which sets REPO, SV, RUN, the endpoints, versions
# and SERVICES_LIB, and runs with `set -euo pipefail`); not meant to be run alone.

# ---------------------------------------------------------------- etcd

ETCD_DIR="$SV/etcd"
ETCD_PID="$RUN/etcd.pid"
ETCD_LOG="$ETCD_DIR/etcd.log"

etcd_health() {
  port_open "$ETCD_EP" || { HEALTH_WHY="nothing accepts TCP connections on $ETCD_EP"; return 1; }
  ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCD_EP" --dial-timeout=2s --command-timeout=3s \
    endpoint health >/dev/null 2>&1 || { HEALTH_WHY="etcdctl endpoint health at $ETCD_EP failed"; return 1; }
}
etcd_running() { pid_alive "$ETCD_PID" "$ETCD_DIR/data"; }
etcd_start() {
  mkdir -p "$ETCD_DIR/data"
  chmod 700 "$ETCD_DIR/data"
  local arch_env=()
  case "$(uname -m)" in x86_64|amd64) ;; *) arch_env=(env "ETCD_UNSUPPORTED_ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)") ;; esac
  local args
  mapfile -t args < <(etcd_config)
  spawn "$ETCD_LOG" "$ETCD_PID" "${arch_env[@]}" etcd "${args[@]}"
}
# etcd_config: etcd's command line, one argument a line (services.sh records its digest as part
# of the mode).
etcd_config() {
  printf '%s\n' --name logship --data-dir "$ETCD_DIR/data" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster logship=http://127.0.0.1:2380 --initial-cluster-state new \
    --logger zap --log-outputs stderr
}
etcd_stop() { stop_pid "$ETCD_PID" "$ETCD_DIR/data" etcd; }
etcd_wipe() { rm -rf "$ETCD_DIR/data"; }
etcd_logfile() { echo "$ETCD_LOG"; }
etcd_pid() { cat "$ETCD_PID" 2>/dev/null; }

# ---------------------------------------------------------------- etcdsec (secure mode)
#
# A second etcd for LOGSHIP_SECURE=1 (docs/security.md) on https://127.0.0.1:2381: TLS with the
# test CA, client certificates required, and authentication on. Users (passwords in
# .services/pki/etcd-<user>-password):
#   root           everything (what `logship ctl` uses in the tests)
#   logship-agent  role logship-agent: read {/logship-sec}/agents/sec-host/collect, read and
#                  write {/logship-sec}/registry/sec-host — what the agent of host sec-host needs.

ETCDSEC_DIR="$SV/etcdsec"
ETCDSEC_PID="$RUN/etcdsec.pid"
ETCDSEC_LOG="$ETCDSEC_DIR/etcd.log"
ETCDSEC_DEFAULT=https://127.0.0.1:2381
ETCDSEC_EP="${LOGSHIP_ETCD_SECURE:-$ETCDSEC_DEFAULT}"

etcdsec_ctl() { # etcdctl against the secure etcd as root (once auth is on)
  local auth=()
  if [ -f "$ETCDSEC_DIR/data/.logship-auth" ]; then auth=(--user "root:$(cat "$PKI/etcd-root-password")"); fi
  ETCDCTL_API=3 timeout 10 etcdctl --endpoints="$ETCDSEC_EP" --cacert "$PKI/ca.crt" \
    --cert "$PKI/client.crt" --key "$PKI/client.key" --dial-timeout=2s --command-timeout=5s \
    "${auth[@]}" "$@"
}

# etcdsec_auth: users, the agent's role, and auth on (once per data directory).
etcdsec_auth() {
  [ -f "$ETCDSEC_DIR/data/.logship-auth" ] && return 0
  local user
  for user in root logship-agent; do
    [ -s "$PKI/etcd-$user-password" ] || (umask 077 && openssl rand -hex 16 >"$PKI/etcd-$user-password")
    etcdsec_ctl user get "$user" >/dev/null 2>&1 ||
      etcdsec_ctl user add "$user" --new-user-password="$(cat "$PKI/etcd-$user-password")" >/dev/null || return 1
  done
  etcdsec_ctl user grant-role root root >/dev/null 2>&1 || true
  etcdsec_ctl role get logship-agent >/dev/null 2>&1 || etcdsec_ctl role add logship-agent >/dev/null || return 1
  etcdsec_ctl role grant-permission logship-agent read /logship-sec/agents/sec-host/collect >/dev/null || return 1
  etcdsec_ctl role grant-permission logship-agent readwrite /logship-sec/registry/sec-host >/dev/null || return 1
  etcdsec_ctl user grant-role logship-agent logship-agent >/dev/null || return 1
  etcdsec_ctl auth enable >/dev/null || return 1
  touch "$ETCDSEC_DIR/data/.logship-auth"
}

etcdsec_health() {
  port_open "$ETCDSEC_EP" || { HEALTH_WHY="nothing accepts TCP connections on $ETCDSEC_EP"; return 1; }
  etcdsec_ctl endpoint health >/dev/null 2>&1 || { HEALTH_WHY="etcdctl endpoint health at $ETCDSEC_EP (TLS, client certificate) failed"; return 1; }
  etcdsec_auth || { HEALTH_WHY="the users, role and auth of $ETCDSEC_EP could not be set up"; return 1; }
}
etcdsec_running() { pid_alive "$ETCDSEC_PID" "$ETCDSEC_DIR/data"; }
etcdsec_start() {
  pki_ensure
  mkdir -p "$ETCDSEC_DIR/data"
  chmod 700 "$ETCDSEC_DIR/data"
  local arch_env=()
  case "$(uname -m)" in x86_64|amd64) ;; *) arch_env=(env "ETCD_UNSUPPORTED_ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)") ;; esac
  local args
  mapfile -t args < <(etcdsec_config)
  spawn "$ETCDSEC_LOG" "$ETCDSEC_PID" "${arch_env[@]}" etcd "${args[@]}"
}
etcdsec_config() {
  printf '%s\n' --name logship-secure --data-dir "$ETCDSEC_DIR/data" \
    --listen-client-urls https://127.0.0.1:2381 --advertise-client-urls https://127.0.0.1:2381 \
    --listen-peer-urls http://127.0.0.1:2382 --initial-advertise-peer-urls http://127.0.0.1:2382 \
    --initial-cluster logship-secure=http://127.0.0.1:2382 --initial-cluster-state new \
    --cert-file "$PKI/server.crt" --key-file "$PKI/server.key" \
    --trusted-ca-file "$PKI/ca.crt" --client-cert-auth \
    --logger zap --log-outputs stderr
}
etcdsec_stop() { stop_pid "$ETCDSEC_PID" "$ETCDSEC_DIR/data" etcdsec; }
etcdsec_wipe() { rm -rf "$ETCDSEC_DIR/data"; }
etcdsec_logfile() { echo "$ETCDSEC_LOG"; }
