#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a fixed number of executions, from
# the committed seed corpus: a bounded smoke run for CI.
#
#   scripts/fuzz-smoke.sh                      # the default runs per target
#   FUZZ_RUNS=5000000 scripts/fuzz-smoke.sh    # a longer run of the parsers
#   FUZZ_ENDPOINT_RUNS=1000000 scripts/fuzz-smoke.sh
#
# The parser targets (authorization_header, token_format, scope_string)
# run FUZZ_RUNS executions each (default 300000); the OAuth endpoint
# targets (token_endpoint, revocation_endpoint, introspection_endpoint,
# registration_endpoint, authorize_query), which drive a whole endpoint
# over an in-memory store and run some 5 000 to 10 000 executions a
# second, run FUZZ_ENDPOINT_RUNS each (default 30000), so the smoke run
# stays within a couple of minutes. The endpoint targets run without
# LeakSanitizer's check after each input that allocates more than it
# frees (-detect_leaks=0): their fixture store keeps what an input adds
# (a registration, a code) until it is rebuilt, which would otherwise
# make every such input a full heap scan; what they keep stays reachable.
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
ENDPOINT_RUNS="${FUZZ_ENDPOINT_RUNS:-30000}"
PARSER_TARGETS=(authorization_header token_format scope_string)
ENDPOINT_TARGETS=(token_endpoint revocation_endpoint introspection_endpoint registration_endpoint authorize_query)
TARGETS=("${PARSER_TARGETS[@]}" "${ENDPOINT_TARGETS[@]}")

export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: installing it from crates.io"
    cargo install cargo-fuzz --locked
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo fuzz build
for target in "${TARGETS[@]}"; do
    runs="$RUNS"
    extra=()
    if [[ " ${ENDPOINT_TARGETS[*]} " == *" $target "* ]]; then
        runs="$ENDPOINT_RUNS"
        extra=(-detect_leaks=0)
    fi
    seeds="$(find "corpus/$target" -type f | wc -l)"
    echo "--- $target: $runs runs from $seeds seeds"
    mkdir -p "$work/$target"
    if ! cargo fuzz run "$target" "$work/$target" "corpus/$target" -- \
        -runs="$runs" -max_len=8192 -print_final_stats=1 "${extra[@]}" >"$work/$target.log" 2>&1; then
        tail -n 40 "$work/$target.log" >&2
        echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^(Done |stat::number_of_executed_units|stat::new_units_added)' "$work/$target.log"
done
