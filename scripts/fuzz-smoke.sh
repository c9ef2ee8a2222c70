#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a fixed number of executions, from
# the committed seed corpus: a bounded smoke run for CI.
#
#   scripts/fuzz-smoke.sh                      # FUZZ_RUNS per target
#   FUZZ_RUNS=5000000 scripts/fuzz-smoke.sh    # a longer run
#
# For an open-ended run of one target (stop it with Ctrl-C):
#
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run token_format
#
# cargo-fuzz passes nightly-only flags (-Z sanitizer, coverage passes) to
# rustc; RUSTC_BOOTSTRAP=1 lets a stable toolchain accept them. The targets
# are built as cargo fuzz does by default: release mode with debug
# assertions and overflow checks, and AddressSanitizer.
#
# New inputs go to a temporary corpus, so the committed seeds in
# fuzz/corpus/<target>/ stay as they are. A failing input is written to
# fuzz/artifacts/<target>/ and the script exits non-zero; reproduce it with
# `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/<file>`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

RUNS="${FUZZ_RUNS:-300000}"
TARGETS=(authorization_header token_format scope_string)

export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: installing it from crates.io"
    cargo install cargo-fuzz --locked
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo fuzz build
for target in "${TARGETS[@]}"; do
    seeds="$(find "corpus/$target" -type f | wc -l)"
    echo "--- $target: $RUNS runs from $seeds seeds"
    mkdir -p "$work/$target"
    if ! cargo fuzz run "$target" "$work/$target" "corpus/$target" -- \
        -runs="$RUNS" -max_len=8192 -print_final_stats=1 >"$work/$target.log" 2>&1; then
        tail -n 40 "$work/$target.log" >&2
        echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(Done |stat::number_of_executed_units|stat::new_units_added)' "$work/$target.log"
done
