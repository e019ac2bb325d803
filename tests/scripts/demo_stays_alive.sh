#!/usr/bin/env bash
# Script test: scripts/demo.sh leaves the pipeline running (a line written into the demo's log
# directory after it returned is searchable in the console within 5 s), tells how to stop it,
# and `scripts/demo.sh stop` leaves no process of the demo behind. Runs the demo in a directory
# of its own with a small LINES and a free console port, so a demo a person left running is not
# touched. Prints "ok: …" / "FAILED: …" per check and "demo_stays_alive: N passed, N failed".
#
#   bash tests/scripts/demo_stays_alive.sh
set -uo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=tests/scripts/lib.sh
source tests/scripts/lib.sh
work=$(mktemp -d)
demo="$work/demo"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
console="127.0.0.1:$port"
demo_processes() { ps -eo pid=,args= | grep -F -- "$demo" | grep -v -e grep -e demo_stays_alive || true; }
finish() {
  DEMO_DIR="$demo" bash scripts/demo.sh stop >/dev/null 2>&1 || true
  mkdir -p target/test-logs && cp "$demo"/*.log target/test-logs/ 2>/dev/null || true
  rm -rf "$work"
}
trap finish EXIT

started=$(date +%s)
out=$(DEMO_DIR="$demo" LINES=2000 CONSOLE_LISTEN="$console" bash scripts/demo.sh 2>&1); rc=$?
echo "$out" | tail -n 25
check "scripts/demo.sh succeeds ($(( $(date +%s) - started )) s)" test "$rc" = 0
check "... its last lines say how to stop it" grep -qF "scripts/demo.sh stop" <<<"$(tail -n 8 <<<"$out")"
check "... and end with the console's URL" grep -qE "^  http://$console/" <<<"$(tail -n 1 <<<"$out")"
check "... and leave four processes running (agent, transfer, console, writer)" \
  test "$(demo_processes | wc -l)" -ge 4

token="demoprobe$RANDOM$RANDOM"
echo "10.9.9.9 - - probe $token" >>"$demo/logs/access.log"
written=$(date +%s%N)
found=""
while [ $(( ($(date +%s%N) - written) / 1000000 )) -lt 5000 ]; do
  total=$(curl -s "http://$console/api/search?q=message:$token&from=now-1h&to=now&size=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])' 2>/dev/null || echo 0)
  if [ "${total:-0}" -ge 1 ]; then found=$(( ($(date +%s%N) - written) / 1000000 )); break; fi
  sleep 0.1
done
check "a line written after the demo returned is searchable in the console within 5 s (${found:-never} ms)" \
  test -n "$found"
writer_lines=$(wc -l <"$demo/logs/app.log" 2>/dev/null || echo 0)
sleep 1.5
check "the writer keeps appending to app.log" test "$(wc -l <"$demo/logs/app.log")" -gt "$writer_lines"

out=$(DEMO_DIR="$demo" bash scripts/demo.sh stop 2>&1); rc=$?
echo "$out"
check "scripts/demo.sh stop succeeds" test "$rc" = 0
left=$(demo_processes)
check "... and leaves no process of the demo behind" test -z "$left"
[ -z "$left" ] || echo "$left"

summary demo_stays_alive
