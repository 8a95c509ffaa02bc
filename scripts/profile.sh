#!/usr/bin/env bash
# Where the engine's CPU goes under the webhook benchmark's load: a release engine with a
# local webhook sink, the reward path paced at RATE over PARTNERS partners, and `perf record`
# on the engine for PERF_SECS in the middle of the run. Prints the share per thread and the
# top symbols (e.g. the allocator's `malloc`/`free`, quoted in BENCHMARKS.md).
#
# Usage: scripts/profile.sh   (RATE=5000 PARTNERS=20 DURATION=15 PERF_SECS=8; needs perf)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-5000}
PARTNERS=${PARTNERS:-20}
DURATION=${DURATION:-15}
PERF_SECS=${PERF_SECS:-8}
PORT=${PORT:-18820}
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export REWARD_WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8
command -v perf >/dev/null || { echo "perf is not installed (linux-perf)" >&2; exit 2; }
cargo build --release --quiet -p reward-engine -p reward-bench
BIN=target/release/reward-engine
# The load generator and the webhook sink.
BENCH=target/release/reward-bench
WORK=$(mktemp -d)
trap 'kill -INT "${SERVER:-0}" "${SINK:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BENCH" webhook-sink --listen "127.0.0.1:$((PORT + 1))" --duration-secs $((DURATION + 20)) >/dev/null 2>&1 &
SINK=$!
"$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
wait_for_health "$PORT"
(sleep $((DURATION / 3)); perf record -g -p "$SERVER" -o "$WORK/perf.data" -- sleep "$PERF_SECS" >/dev/null 2>&1) &
PERF=$!
say "profiling the engine at $RATE actions/s with webhooks on"
"$BENCH" loadgen --url "http://127.0.0.1:$PORT" --partners "$PARTNERS" --connections 64 --duration-secs "$DURATION" \
    --rate "$RATE" --webhook-url "http://127.0.0.1:$((PORT + 1))/hooks" --quiet | tail -4
wait "$PERF"
say "CPU by thread"
perf report -i "$WORK/perf.data" --no-children --sort comm -g none 2>/dev/null | grep '%' | head -8
say "top symbols"
perf report -i "$WORK/perf.data" --no-children --sort dso,symbol -g none 2>/dev/null | grep '%' | head -25 | cut -c1-140
