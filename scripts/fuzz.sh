#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (seconds per target, default 20) from the
# checked-in seeds (fuzz/seeds/<target>) and prints, per target, the executions and whether it
# crashed. Exits 1 on the first crash, with libFuzzer's report and the crashing input under
# fuzz/artifacts/<target>/. Needs the nightly toolchain (on the project's machines); installs
# cargo-fuzz when missing. `FUZZ_PROFILE=release FUZZ_SANITIZER=address bash scripts/fuzz.sh 600`
# is the long run RELIABILITY.md quotes; CI uses a debug build and no sanitizer (the code is
# safe Rust, and the build is several times faster).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
sanitizer="${FUZZ_SANITIZER:-none}"
# --dev for the short CI runs (a much faster build); FUZZ_PROFILE=release for long runs.
profile=()
if [ "${FUZZ_PROFILE:-dev}" = dev ]; then profile=(--dev); fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: the nightly toolchain is needed (rustup toolchain install nightly --profile minimal)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=$(cd fuzz && cargo +nightly fuzz list)
(cd fuzz && cargo +nightly fuzz build "${profile[@]}" -s "$sanitizer" >/dev/null 2>&1) ||
  (cd fuzz && cargo +nightly fuzz build "${profile[@]}" -s "$sanitizer")
printf '%-16s %12s %8s %s\n' target executions seconds result
for t in $targets; do
  work="fuzz/corpus/$t"
  mkdir -p "$work"
  log="$(mktemp)"
  if (cd fuzz && cargo +nightly fuzz run "${profile[@]}" -s "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  printf '%-16s %12s %8s %s\n' "$t" "${runs:-?}" "$seconds" "$result"
  if [ "$result" != ok ]; then
    tail -60 "$log" >&2
    exit 1
  fi
  rm -f "$log"
done
