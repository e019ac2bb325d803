#!/usr/bin/env bash
# Fuzzes logship's decoders of untrusted and on-disk input with cargo-fuzz (libFuzzer), on the
# stable toolchain:
#   1. installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`),
#   2. builds every target in fuzz/ once (`cargo fuzz build -s none`),
#   3. runs each for FUZZ_SECONDS (default 60) with libFuzzer's -max_total_time,
#   4. fails if any target crashed, printing the path of the input that crashed it.
#
# Why `-s none` works on stable: cargo-fuzz only adds nightly-only flags (-Zsanitizer,
# -Zbuild-std) for a sanitizer, `--build-std` or careful mode. Without a sanitizer it compiles
# with stable -C flags only (sancov passes, --cfg fuzzing, -Cdebug-assertions). Safe Rust needs
# no AddressSanitizer to report its bugs: a panic (index out of range, overflow with debug
# assertions, a failed assert in the target) is the crash libFuzzer catches.
#
# Seeds: fuzz/seeds/<target>/ (committed, a few valid inputs). The growing corpus goes to
# fuzz/corpus/<target>/, crashes to fuzz/artifacts/<target>/, libFuzzer's output to
# fuzz/artifacts/<target>.log (all git-ignored).
# Reproduce a crash: cd fuzz && cargo fuzz run -s none <target> <crash file>
#
# Usage: scripts/fuzz.sh [target...]   (default: every target `cargo fuzz list` names)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "fuzz.sh: building ${targets[*]} ($(elapsed))"
cargo fuzz build -s none

failed=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  seeds=()
  if [ -d "seeds/$target" ]; then seeds=("seeds/$target"); fi
  # Beside the target's artifact directory, not in it: cargo-fuzz looks there for crash inputs.
  log="artifacts/$target.log"
  echo "fuzz.sh: $target for ${seconds}s ($(elapsed))"
  # The first corpus directory receives new inputs; the seeds are only read.
  if cargo fuzz run -s none "$target" "corpus/$target" "${seeds[@]}" -- \
      -max_total_time="$seconds" -timeout=20 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done ' "$log" | sed "s/^/  $target: /" || true
  else
    failed+=("$target")
    echo "fuzz.sh: $target FAILED; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //')
    if [ -n "$crash" ]; then
      case "$crash" in /*) ;; *) crash="$(pwd)/$crash" ;; esac
      echo "fuzz.sh: crash input: $crash" >&2
      echo "fuzz.sh: reproduce: (cd fuzz && cargo fuzz run -s none $target $crash)" >&2
    fi
  fi
done

echo "fuzz.sh: done in $(elapsed)"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: crashed: ${failed[*]}" >&2
  exit 1
fi
