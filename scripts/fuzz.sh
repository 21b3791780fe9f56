#!/usr/bin/env bash
# Builds every fuzz target and runs each, on the stable toolchain with `-s none` (no
# sanitizer; the code under test is safe Rust). Installs cargo-fuzz if needed.
#   scripts/fuzz.sh            each target for 30 s
#   scripts/fuzz.sh 300        each target for 300 s
#   scripts/fuzz.sh --runs N   each target for N executions (the long runs: N = 10000000)
# Prints each target's execution count ("Done N runs") at the end.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
limit="-max_total_time=${1:-30}"
if [ "${1:-}" = "--runs" ]; then
    limit="-runs=${2:?--runs needs a count}"
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo fuzz build -s none
summary=""
for target in ${FUZZ_TARGETS:-$(cargo fuzz list)}; do
    echo "== fuzz $target ($limit)"
    log="$(mktemp)"
    cargo fuzz run -s none "$target" -- "$limit" -print_final_stats=1 2>&1 | tee "$log" | tail -3
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 || true)
    summary+="$target: ${runs:-no count (crashed?)}"$'\n'
    rm -f "$log"
done
printf '%s' "$summary"
