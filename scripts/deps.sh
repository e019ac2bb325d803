#!/usr/bin/env bash
# Installs the Debian packages that building logship and running its
# integration tests need. Idempotent: exits quickly when everything is there.
#
#   bash scripts/deps.sh
#
# Needs root (or sudo). Works without a TTY / stdin (CI=true).
set -euo pipefail

PKGS=(
  # build: prost/tonic codegen, rdkafka (bundled librdkafka: cmake, zlib, ssl)
  protobuf-compiler
  libprotobuf-dev
  make
  cmake
  pkg-config
  zlib1g-dev
  libssl-dev
  build-essential
  # tests / scripts/services.sh
  kcat
  etcd-server
  etcd-client
  prometheus
  curl
  unzip
  ca-certificates
  procps
  util-linux
  passwd
  # secure mode of scripts/services.sh (LOGSHIP_SECURE=1): certificates, TLS + auth front of
  # Elasticsearch
  openssl
  nginx
  # console browser tests (tests/console_browser.rs): headless Chromium driven over WebDriver
  chromium
  chromium-driver
  # host metrics (tests/host_metrics.rs): InfluxDB 1.x
  influxdb
  # alerts (issue 30): Prometheus Alertmanager, run by scripts/services.sh (its system
  # service stays stopped, as InfluxDB's)
  prometheus-alertmanager
)
# Java runs Kafka and Elasticsearch; Maven downloads their jars/zip.
# (javac/jar: services.sh compiles a tiny Elasticsearch plugin.)
command -v javac >/dev/null 2>&1 || PKGS+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || PKGS+=(maven)
# Go builds InfluxDB 1.8 once for the v2 API tests (scripts/services/influxdb2.sh).
command -v go >/dev/null 2>&1 || PKGS+=(golang-go)

missing=()
for p in "${PKGS[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all system packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "deps: need root to install: ${missing[*]}" >&2; exit 1
  fi
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive

# Keep apt from starting daemons (notably the system etcd on :2379, which would
# clash with the one scripts/services.sh runs). policy-rc.d exit 101 = "action
# forbidden" for invoke-rc.d / deb-systemd-invoke. Only install it if there is
# none, and remove only our own.
POLICY=/usr/sbin/policy-rc.d
our_policy=0
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  our_policy=1
fi
cleanup() { if [ "$our_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

apt_get() {
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Update the index first when there is none (fresh image); otherwise try with
# the index we have and update + retry once on failure (stale index).
LOG=/tmp/logship-deps-apt.log
: >"$LOG"
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
  apt_get update >>"$LOG" 2>&1
fi
if ! apt_get install --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; then
  apt_get update >>"$LOG" 2>&1 || true
  if ! apt_get install --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; then
    echo "deps: apt-get install failed; tail of $LOG:" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
fi

# If a system etcd service got started anyway (systemd host, or a
# policy-rc.d that allowed it), stop and disable it: services.sh runs its own.
if printf '%s\n' "${missing[@]}" | grep -qx etcd-server; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now etcd.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/etcd ]; then
    $SUDO /etc/init.d/etcd stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null 2>&1 && $SUDO update-rc.d etcd disable >/dev/null 2>&1 || true
  fi
fi

# Same for the system InfluxDB: services.sh runs its own on 127.0.0.1:8086.
if printf '%s\n' "${missing[@]}" | grep -qx influxdb; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now influxdb.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/influxdb ]; then
    $SUDO /etc/init.d/influxdb stop >/dev/null 2>&1 || true
  fi
fi

# Same for the system Prometheus: the tests run their own, on a port of their choosing.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
fi

echo "deps: done"
