# shellcheck shell=bash
# Shared by the script tests in tests/scripts/ (sourced, not run): a check counts as passed or
# failed, and `summary NAME` prints the closing "NAME: N passed, N failed" line test.sh adds to
# its totals, returning non-zero when a check failed.

passed=0
failed=0
check() { # NAME CMD...: one check
  local name="$1"; shift
  if "$@"; then echo "ok: $name"; passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
}
summary() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}
