#!/usr/bin/env bash
# Webhook delivery under load (issue 5), written to BENCHMARKS.md's webhook section:
#   1. steady: the reward path paced at RATE actions/s for DURATION s over PARTNERS
#      partners, each with one endpoint (all events) on a local `webhook-sink`; the sink
#      counts deliveries per second and each event's lag from createdAt to arrival; after
#      the load stops the backlog drains and the sink says when the last one arrived.
#   2. isolation: the same, with the first partner also holding a slow endpoint (answers
#      after 15 s) and a dead one (nothing listens): the healthy sink's lag is compared.
#   3. drain: the dispatcher alone. The same load while the sink is down (every first
#      attempt fails at once; retry schedule 0s,1h on the test clock), then the sink comes
#      up and the clock moves two hours: the whole backlog is due at once, and the sink
#      measures how fast it drains with no reward traffic beside it.
#   4. baseline: the same paced load with no endpoint, for the reward path's own rate.
# Everything runs on 127.0.0.1 with bounded durations (release build).
#
# Usage: scripts/webhook_bench.sh   (RATE=5000 DURATION=15 PARTNERS=20 CONNECTIONS=64;
#        PHASES="baseline steady isolation drain"; BIN=another/reward-engine to skip the build,
#        with BENCH=its reward-bench [default: the one beside BIN])
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-5000}
DURATION=${DURATION:-15}
PARTNERS=${PARTNERS:-20}
CONNECTIONS=${CONNECTIONS:-64}
DRAIN=${DRAIN:-30}
PORT=${PORT:-18800}
RESULTS=${RESULTS:-bench-results/webhooks-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
PHASES=${PHASES:-baseline steady isolation drain}
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export REWARD_WEBHOOK_ALLOWED_CIDRS=127.0.0.0/8

if [ -z "${BIN:-}" ]; then
    say "building the release binaries"
    cargo build --release --quiet -p reward-engine -p reward-bench
    BIN=target/release/reward-engine
fi
# The load generator and the webhook sink.
BENCH=${BENCH:-$(dirname "$BIN")/reward-bench}
need_bench "$BENCH"

# Waits (at most DRAIN s) until every delivery created has settled, then keeps /metrics.
drain_and_keep_metrics() { # label
    local metrics created settled
    for _ in $(seq 1 "$DRAIN"); do
        sleep 1
        metrics=$(curl -fsS "http://127.0.0.1:$PORT/metrics")
        created=$(echo "$metrics" | awk '/^reward_webhook_deliveries_created_total/ {print $2}')
        settled=$(echo "$metrics" | awk '/^reward_webhook_deliveries_settled_total/ {sum += $2} END {print sum + 0}')
        echo "  backlog: created ${created:-0}, settled ${settled:-0}" >&2
        if [ "${created:-0}" != 0 ] && [ "${created:-0}" = "$settled" ]; then break; fi
    done
    curl -fsS "http://127.0.0.1:$PORT/metrics" >"$RESULTS/metrics-$1.txt" || true
}

run_phase() { # label, extra loadgen args...
    local label=$1
    shift
    local data sink_pid slow_pid server_pid
    data=$(mktemp -d)
    "$BENCH" webhook-sink --listen "127.0.0.1:$((PORT + 1))" --duration-secs $((DURATION + DRAIN + 5)) --json-out "$RESULTS/sink-$label.json" \
        >"$RESULTS/sink-$label.out" 2>"$RESULTS/sink-$label.log" &
    sink_pid=$!
    "$BENCH" webhook-sink --listen "127.0.0.1:$((PORT + 2))" --delay-ms 15000 --duration-secs $((DURATION + DRAIN + 5)) \
        >"$RESULTS/slow-$label.out" 2>"$RESULTS/slow-$label.log" &
    slow_pid=$!
    "$BIN" serve --data-dir "$data" --listen "127.0.0.1:$PORT" >"$RESULTS/server-$label.log" 2>&1 &
    server_pid=$!
    wait_for_health "$PORT"
    say "$label: $RATE actions/s for $DURATION s over $PARTNERS partners, webhooks on"
    "$BENCH" loadgen --url "http://127.0.0.1:$PORT" --partners "$PARTNERS" --connections "$CONNECTIONS" --duration-secs "$DURATION" \
        --rate "$RATE" --webhook-url "http://127.0.0.1:$((PORT + 1))/hooks" --json-out "$RESULTS/loadgen-$label.json" --quiet "$@"
    say "$label: load stopped; letting the backlog drain (up to $DRAIN s)"
    drain_and_keep_metrics "$label"
    kill -INT "$sink_pid" "$slow_pid" 2>/dev/null || true
    wait "$sink_pid" "$slow_pid" 2>/dev/null || true
    kill -INT "$server_pid"
    wait "$server_pid" || true
    rm -rf "$data"
}

run_drain() {
    local label=drain data server_pid sink_pid
    data=$(mktemp -d)
    REWARD_TEST_CLOCK=on REWARD_WEBHOOK_RETRY_SCHEDULE=0s,1h "$BIN" serve --data-dir "$data" --listen "127.0.0.1:$PORT" >"$RESULTS/server-$label.log" 2>&1 &
    server_pid=$!
    wait_for_health "$PORT"
    say "$label: $RATE actions/s for $DURATION s with the sink down"
    "$BENCH" loadgen --url "http://127.0.0.1:$PORT" --partners "$PARTNERS" --connections "$CONNECTIONS" --duration-secs "$DURATION" \
        --rate "$RATE" --webhook-url "http://127.0.0.1:$((PORT + 1))/hooks" --json-out "$RESULTS/loadgen-$label.json" --quiet
    sleep 2
    "$BENCH" webhook-sink --listen "127.0.0.1:$((PORT + 1))" --duration-secs $((DRAIN + 10)) --json-out "$RESULTS/sink-$label.json" \
        >"$RESULTS/sink-$label.out" 2>"$RESULTS/sink-$label.log" &
    sink_pid=$!
    sleep 1
    say "$label: sink up; moving the clock two hours so the whole backlog is due (1 h ± 20 % jitter)"
    curl -fsS -X POST -H "authorization: Bearer $REWARD_ADMIN_TOKEN" -H 'content-type: application/json' \
        -d '{"advanceSeconds": 7200}' "http://127.0.0.1:$PORT/api/v1/admin/clock" >/dev/null
    drain_and_keep_metrics "$label"
    kill -INT "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    kill -INT "$server_pid"
    wait "$server_pid" || true
    rm -rf "$data"
}

run_baseline() {
    local data server_pid
    data=$(mktemp -d)
    "$BIN" serve --data-dir "$data" --listen "127.0.0.1:$PORT" >"$RESULTS/server-baseline.log" 2>&1 &
    server_pid=$!
    wait_for_health "$PORT"
    say "baseline: $RATE actions/s for $DURATION s, no webhook endpoints"
    "$BENCH" loadgen --url "http://127.0.0.1:$PORT" --partners "$PARTNERS" --connections "$CONNECTIONS" --duration-secs "$DURATION" \
        --rate "$RATE" --json-out "$RESULTS/loadgen-baseline.json" --quiet
    kill -INT "$server_pid"
    wait "$server_pid" || true
    rm -rf "$data"
}

for phase in $PHASES; do
    case $phase in
        baseline) run_baseline ;;
        steady) run_phase steady ;;
        # Port PORT+3 has nothing listening: a dead endpoint (connection refused).
        isolation) run_phase isolation --extra-webhook-url "http://127.0.0.1:$((PORT + 2))/slow" --extra-webhook-url "http://127.0.0.1:$((PORT + 3))/dead" ;;
        drain) run_drain ;;
        *) echo "unknown phase $phase" >&2; exit 2 ;;
    esac
done

python3 scripts/webhook_report.py "$RESULTS" "$RATE" "$DURATION" "$PARTNERS"
