#!/usr/bin/env bash
# Looks through every log the tests produced (copied to target/test-logs/ by the test helpers)
# for the secrets the tests used: the test PKI's passwords and API key, the v2 InfluxDB's token,
# and every password the tests write into files (they all match *-Secret-NNNN or are listed
# below). Exits 1 naming the log that shows one; never prints a secret itself.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=target/test-logs
if [ ! -d "$logs" ] || [ -z "$(ls -A "$logs")" ]; then
  echo "check-test-logs: no logs in $logs (run the tests first)" >&2
  exit 1
fi
secrets=$(mktemp)
trap 'rm -f "$secrets"' EXIT
for file in .services/pki/*password* .services/pki/es-api-key; do
  [ -f "$file" ] && { cat "$file"; echo; } >>"$secrets"
done
# The v2 test server's token (`admin:<password>`, scripts/services/influxdb2.sh): whole, and
# its password alone.
if [ -s .services/influxdb2/token ]; then
  { cat .services/influxdb2/token; echo; cut -d: -f2- .services/influxdb2/token; } >>"$secrets"
fi
# The API key as Elasticsearch's `encoded` form, as it would appear in a header.
if [ -f .services/pki/es-api-key ]; then
  tr -d '\n' <.services/pki/es-api-key | base64 -w0 >>"$secrets"
  echo >>"$secrets"
fi
printf '%s\n' not-the-password hunter2 >>"$secrets"
grep -v '^$' "$secrets" | sort -u -o "$secrets"
found=0
if grep -rlF -f "$secrets" "$logs"; then found=1; fi
if grep -rlE '[A-Za-z]+-Secret-[0-9]{4}' "$logs"; then found=1; fi
count=$(ls "$logs" | wc -l)
if [ "$found" = 1 ]; then
  echo "check-test-logs: the logs above show a test secret" >&2
  exit 1
fi
echo "check-test-logs: no test secret in $count logs"
