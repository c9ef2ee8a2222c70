#!/usr/bin/env bash
# Instructions per request of each path through the stack, counted by
# valgrind's callgrind: repeatable on a noisy machine, where time is not.
#
#   scripts/bench-instructions.sh                      # every path
#   scripts/bench-instructions.sh accepted bad_checksum
#
# Each path runs twice, with 20 000 and 40 000 requests
# (`cargo bench --bench scaling -- --profile <path> <n>`); the difference
# divided by 20 000 is the count per request, setup excluded. valgrind hides
# SHA-NI, so SHA-256 counts as ~3 500 instructions of software. Needs
# valgrind (apt-get install -y valgrind); takes about a minute.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v valgrind >/dev/null || {
    echo "bench-instructions: valgrind is not installed (apt-get install -y valgrind)" >&2
    exit 1
}

paths=("$@")
if [ ${#paths[@]} -eq 0 ]; then
    paths=(baseline accepted missing_header bad_checksum unknown_token insufficient_scope)
fi

bin=$(cargo bench -p tower-token-auth --bench scaling --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "scaling" and m.get("executable"):
        print(m["executable"])')

count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --profile "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(rustc --version)"
printf '%-20s %12s\n' path instructions/request
for path in "${paths[@]}"; do
    a=$(count "$path" 20000)
    b=$(count "$path" 40000)
    printf '%-20s %12d\n' "$path" $(((b - a) / 20000))
done
