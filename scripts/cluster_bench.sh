#!/usr/bin/env bash
# The cluster's costs on this machine (issue 13), measured in one run, release builds, on the
# project's private PostgreSQL 15 (scripts/pg/test_server.sh, fsync on):
#   1. the HTTP ceiling: the bare axum hello-world under the same load generator, and the
#      default single node (redb with the write-ahead log) as the reference;
#   2. one node vs three nodes, all on the same database and the same 2 cores, signed
#      submits over many partners, load spread over the nodes: rewards/s, p50/p99, and the
#      CPU-seconds per 1,000 rewards of the engine processes and of PostgreSQL, the
#      database's commits and rows per second, and rewards per commit (the batch size);
#   3. forwarding: the three nodes again with all load sent to one node (2/3 forwarded);
#   4. takeover: one of the three SIGKILLed; the time until the others hold every shard.
# Three nodes cannot beat one on two shared cores: the figures to read are CPU per reward
# and what it projects to on real hardware (BENCHMARKS.md).
#
# Usage: scripts/cluster_bench.sh      (DURATION=20 CONNECTIONS=64 PARTNERS=100 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
PARTNERS=${PARTNERS:-100}
PORT=${PORT:-18760}
RESULTS=${RESULTS:-bench-results/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
BIN=target/release/reward-engine
BENCH=target/release/reward-bench
PG=/usr/lib/postgresql/15/bin
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

say "building the release binaries"
cargo build --release --quiet -p reward-engine -p reward-bench

STARTED_PG=0
if ! bash scripts/pg/test_server.sh running; then
    bash scripts/pg/test_server.sh start >/dev/null
    STARTED_PG=1
fi
URL="$(bash scripts/pg/test_server.sh url)"
cleanup() {
    pkill -f "reward-engine serve --listen 127.0.0.1:$PORT" 2>/dev/null || true
    for n in 1 2 3; do pkill -f "serve --listen 127.0.0.1:$((PORT + n))" 2>/dev/null || true; done
    if [ "$STARTED_PG" = 1 ]; then bash scripts/pg/test_server.sh stop; fi
}
trap cleanup EXIT
psql_q() { "$PG/psql" -qtA "$URL" -c "$1"; }

# CPU ticks (user + system) of the processes whose ids are given, summed.
ticks() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo "$total"; }
postgres_pids() { pgrep -d ' ' -f "postgres" -u postgres || true; }
db_counters() { psql_q "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()"; }

# The engine's own commits (its committer's transactions), summed over the live nodes.
engine_commits() {
    local total=0 port value
    for port in "${NODE_PORTS[@]}"; do
        value=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^reward_commit_seconds_count /{print $2}')
        total=$((total + ${value%.*}))
    done
    echo "$total"
}

PIDS=()
NODE_PORTS=()
start_nodes() { # count schema
    local count=$1 schema=$2 n
    psql_q "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" 2>/dev/null
    PIDS=()
    NODE_PORTS=()
    for n in $(seq 1 "$count"); do
        REWARD_SERVER_STORE=postgres REWARD_STORE_POSTGRES_URL="$URL?options=-csearch_path%3D$schema&application_name=${schema}_n$n" \
            REWARD_CLUSTER_ENABLED=true REWARD_CLUSTER_NODE_ID="n$n" REWARD_CLUSTER_ADVERTISE="127.0.0.1:$((PORT + n))" \
            "$BIN" serve --listen "127.0.0.1:$((PORT + n))" >"$RESULTS/$schema-n$n.log" 2>&1 &
        PIDS+=($!)
        NODE_PORTS+=($((PORT + n)))
    done
    for n in $(seq 1 "$count"); do
        for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$((PORT + n))/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
        curl -fsS "http://127.0.0.1:$((PORT + n))/readyz" >/dev/null || { echo "node n$n is not ready; see $RESULTS/$schema-n$n.log" >&2; exit 1; }
    done
}
stop_nodes() { local pid; for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done; for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done; PIDS=(); }

# One measured load: label, then loadgen's URL arguments. Writes $label.json and $label.cost.
measure() {
    local label=$1; shift
    local engine_before pg_before db_before commits_before engine_after pg_after db_after commits_after
    engine_before=$(ticks "${PIDS[@]}"); pg_before=$(ticks $(postgres_pids)); db_before=$(db_counters); commits_before=$(engine_commits)
    "$BENCH" loadgen "$@" --connections "$CONNECTIONS" --partners "$PARTNERS" --duration-secs "$DURATION" --quiet --json-out "$RESULTS/$label.json"
    engine_after=$(ticks "${PIDS[@]}"); pg_after=$(ticks $(postgres_pids)); db_after=$(db_counters); commits_after=$(engine_commits)
    # engine ticks, PostgreSQL ticks, database transactions (reads included) before/after,
    # rows written before/after, ticks per second, the engine's commits before/after.
    echo "$((engine_after - engine_before)) $((pg_after - pg_before)) ${db_before%|*} ${db_after%|*} ${db_before#*|} ${db_after#*|} $(getconf CLK_TCK) $commits_before $commits_after" >"$RESULTS/$label.cost"
}

say "HTTP ceiling: bare axum hello-world under the same generator"
"$BENCH" hello-server --listen "127.0.0.1:$PORT" >"$RESULTS/hello.log" 2>&1 &
HELLO=$!
wait_for_health "$PORT"
"$BENCH" loadgen --target hello --url "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" --duration-secs "$DURATION" --quiet --json-out "$RESULTS/hello.json"
kill -INT "$HELLO"; wait "$HELLO" || true

say "reference: the default single node (redb with the write-ahead log), same generator"
DATA=$(mktemp -d)
"$BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$((PORT + 1))" >"$RESULTS/embedded.log" 2>&1 &
PIDS=($!)
NODE_PORTS=($((PORT + 1)))
wait_for_health "$((PORT + 1))"
measure embedded --url "http://127.0.0.1:$((PORT + 1))"
stop_nodes
rm -rf "$DATA"

say "one node on PostgreSQL (cluster mode, every shard its own)"
start_nodes 1 bench_one
measure one-node --url "http://127.0.0.1:$((PORT + 1))"
stop_nodes

say "three nodes on PostgreSQL, load spread over them"
start_nodes 3 bench_three
measure three-spread --url "http://127.0.0.1:$((PORT + 1))" --also-url "http://127.0.0.1:$((PORT + 2))" --also-url "http://127.0.0.1:$((PORT + 3))"
curl -fsS "http://127.0.0.1:$((PORT + 1))/metrics" >"$RESULTS/three-spread-n1.metrics"

say "three nodes, all load on one node (two thirds forwarded)"
measure three-one-door --url "http://127.0.0.1:$((PORT + 1))"
curl -fsS "http://127.0.0.1:$((PORT + 1))/metrics" >"$RESULTS/three-one-door-n1.metrics"

say "takeover: SIGKILL n3, time until n1 and n2 hold every shard"
shards_held() { local total=0 n v; for n in 1 2; do v=$(curl -fsS "http://127.0.0.1:$((PORT + n))/metrics" | awk '/^reward_cluster_shards_owned /{print $2}'); total=$((total + ${v:-0})); done; echo "$total"; }
killed_at=$(date +%s.%N)
kill -KILL "${PIDS[2]}"
while [ "$(shards_held)" -lt 65 ]; do sleep 0.05; done
held_at=$(date +%s.%N)
python3 -c "print(round($held_at - $killed_at, 2))" >"$RESULTS/takeover.secs"
unset 'PIDS[2]'
stop_nodes

say "writing the report"
python3 scripts/cluster_report.py "$RESULTS"
