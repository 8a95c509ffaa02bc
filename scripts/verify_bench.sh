#!/usr/bin/env bash
# The cost of `reward-engine verify` on a big store: a release server fed ACTIONS signed
# rewards by `reward-bench loadgen` (bounded by count and by time), stopped cleanly, then
# `verify` under `/usr/bin/time -v` (wall time and peak RSS). Runs on 127.0.0.1 only.
#
# Usage: scripts/verify_bench.sh [redb|sled]   (ACTIONS=1000000 PARTNERS=100 by default)
# Keeps the data directory in $RESULTS (delete it after: about 1.5 KiB per action).
set -euo pipefail
cd "$(dirname "$0")/.."

STORE=${1:-redb}
ACTIONS=${ACTIONS:-1000000}
PARTNERS=${PARTNERS:-100}
CONNECTIONS=${CONNECTIONS:-64}
# The load is bounded by time too: an hour is far beyond what ACTIONS needs on this machine.
DURATION_MAX=${DURATION_MAX:-3600}
PORT=${PORT:-18760}
RESULTS=${RESULTS:-bench-results/verify-$STORE-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
BIN=target/release/reward-engine
# The load generator.
BENCH=target/release/reward-bench
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

say "building the release binaries"
cargo build --release --quiet -p reward-engine -p reward-bench --bins

DATA="$RESULTS/data"
"$BIN" serve --store "$STORE" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >"$RESULTS/server.log" 2>&1 &
SERVER=$!
trap 'kill -INT "$SERVER" 2>/dev/null || true' EXIT
wait_for_health "$PORT"
say "loading $ACTIONS actions over $PARTNERS partners ($STORE)"
"$BENCH" loadgen --url "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" --partners "$PARTNERS" \
    --requests "$ACTIONS" --duration-secs "$DURATION_MAX" --quiet --json-out "$RESULTS/loadgen.json"
kill -INT "$SERVER"
wait "$SERVER" || true
trap - EXIT
du -sh "$DATA" | tee "$RESULTS/size.txt"

say "verify"
set +e
/usr/bin/time -v "$BIN" verify --data-dir "$DATA" >"$RESULTS/verify.txt" 2>"$RESULTS/verify-time.txt"
CODE=$?
set -e
echo "verify exit code: $CODE"
head -5 "$RESULTS/verify.txt"
grep -E "Elapsed \(wall clock\)|Maximum resident set size|User time|System time" "$RESULTS/verify-time.txt"
