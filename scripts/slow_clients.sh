#!/usr/bin/env bash
# Slow clients against a release build (issue 10, finding 1): SLOW connections (two Python
# asyncio processes) each send a request line and then one header line every 5 s, and are
# reopened at once when the server cuts them, for DURATION s; meanwhile /healthz and a
# signed submit are probed on fresh connections every 250 ms. Prints the probes' max/p99
# latency and failures, what the slow clients saw, and the server's peak memory.
# Everything is on 127.0.0.1 and bounded by DURATION.
#
# Usage: scripts/slow_clients.sh   (SLOW=20000 DURATION=60 PORT=18900; BIN=path to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."

SLOW=${SLOW:-20000}
DURATION=${DURATION:-60}
PORT=${PORT:-18900}
RESULTS=${RESULTS:-bench-results/slow-clients-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export REWARD_LOG=info # the bounds line and the cap's warnings

# Each process (server, each slow-client half) needs a descriptor per connection.
ulimit -n "$(ulimit -Hn)"
echo "open-files limit: $(ulimit -n)" >&2

if [ -z "${BIN:-}" ]; then
    say "building the release binary"
    cargo build --release --quiet
    BIN=target/release/reward-engine
fi

data=$(mktemp -d)
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$data"
}
pids=()
server_pid=
trap cleanup EXIT

say "starting the server (release, --demo) on 127.0.0.1:$PORT"
"$BIN" serve --demo --listen "127.0.0.1:$PORT" --data-dir "$data" >"$RESULTS/server.out" 2>"$RESULTS/server.log" &
server_pid=$!
wait_for_health "$PORT"
grep -m1 'connection bounds' "$RESULTS/server.log" >&2 || true

say "$SLOW slow clients and the probes for ${DURATION}s"
half=$((SLOW / 2))
for count in "$half" $((SLOW - half)); do
    python3 scripts/slow_clients.py slow --port "$PORT" --connections "$count" --duration "$DURATION" >>"$RESULTS/slow.jsonl" &
    pids+=($!)
done
sleep 5 # let the slow clients ramp up before probing
python3 scripts/slow_clients.py probe --port "$PORT" --credentials "$data/demo-credentials.json" --duration $((DURATION - 10)) \
    >"$RESULTS/probe.json" &
pids+=($!)
wait "${pids[@]}"
pids=()

curl -fsS "http://127.0.0.1:$PORT/metrics" >"$RESULTS/metrics.txt" || true # server-side latencies, for diagnosis
peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
say "results (also in $RESULTS)"
cat "$RESULTS/probe.json"
cat "$RESULTS/slow.jsonl"
echo "server peak RSS: $((peak_kib / 1024)) MiB"
echo "cap reached (episodes): $(grep -c 'connection cap reached' "$RESULTS/server.log" || true)"
