#!/usr/bin/env bash
# Runs the benchmarks of BENCHMARKS.md and prints their figures and ratios.
#
#   scripts/bench.sh               # criterion benches + store scaling (about 6 minutes)
#   scripts/bench.sh --loopback    # also the end-to-end wrk run over 127.0.0.1 (needs wrk)
#   scripts/bench.sh --no-postgres # leave out the postgres/ rows (no PostgreSQL at hand)
#
# The postgres/ rows (the tower-token-auth-sqlx crate's `postgres` bench) use
# DATABASE_URL, or start a throwaway cluster from the machine's initdb/pg_ctl
# as the tests do (crates/tower-token-auth-sqlx/tests/it/pg.rs).
#
# Every figure is compared with others of the same run only: on a shared,
# noisy machine an absolute time is not a result. Set CARGO_TARGET_DIR to
# keep the release build apart from a development one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${CARGO_TARGET_DIR:-target}"

loopback=false
postgres=true
for arg in "$@"; do
    case "$arg" in
        --loopback) loopback=true ;;
        --no-postgres) postgres=false ;;
        *) echo "usage: scripts/bench.sh [--loopback] [--no-postgres]" >&2; exit 2 ;;
    esac
done

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(rustc --version)"

cargo bench -p tower-token-auth --all-features --bench auth
if $postgres; then
    cargo bench -p tower-token-auth-sqlx --all-features --bench postgres
fi
cargo bench -p tower-token-auth --bench paired
cargo bench -p tower-token-auth --bench scaling
if $loopback; then
    cargo bench -p tower-token-auth --bench loopback
fi

python3 scripts/bench-ratios.py --target-dir "$target"
