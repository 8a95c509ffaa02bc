#!/usr/bin/env bash
# One benchmark run on one machine, written to BENCHMARKS.md:
#   1. the engine (release build, redb and sled, with the write-ahead log, and redb
#      without it) under `reward-bench loadgen`: many partners, and one hot partner;
#   2. the HTTP ceiling: a bare axum hello-world under the same generator and requests;
#   3. the baseline: the same issuance as one PostgreSQL 15 transaction under pgbench.
# Everything runs on 127.0.0.1 with bounded durations. Installs PostgreSQL if missing.
#
# Usage: scripts/bench.sh            (DURATION=15 CONNECTIONS=64 PARTNERS=100 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
PARTNERS=${PARTNERS:-100}
PORT=${PORT:-18700}
RESULTS=${RESULTS:-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
BIN=target/release/reward-engine
# The tools: loadgen and the bare-axum hello-server.
BENCH=target/release/reward-bench
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export PGOPTIONS='-c client_min_messages=warning'

say "building the release binaries"
cargo build --release --quiet -p reward-engine -p reward-bench

run_engine() { # store, label, write-ahead log on|off, loadgen args...
    local store=$1 label=$2 wal=$3
    shift 3
    local data
    data=$(mktemp -d)
    REWARD_WAL_ENABLED=$wal "$BIN" serve --store "$store" --data-dir "$data" --listen "127.0.0.1:$PORT" >"$RESULTS/server-$label.log" 2>&1 &
    local pid=$!
    wait_for_health "$PORT"
    say "engine ($store): $label"
    "$BENCH" loadgen --url "http://127.0.0.1:$PORT" --connections "$CONNECTIONS" --duration-secs "$DURATION" --json-out "$RESULTS/$label.json" "$@"
    curl -fsS "http://127.0.0.1:$PORT/metrics" >"$RESULTS/metrics-$label.txt" || true
    kill -INT "$pid"
    wait "$pid" || true
    rm -rf "$data"
}

run_engine redb engine-redb-many true --partners "$PARTNERS"
run_engine redb engine-redb-hot true --hot
run_engine sled engine-sled-many true --partners "$PARTNERS"
run_engine redb engine-redb-nowal-many false --partners "$PARTNERS"

say "HTTP ceiling: bare axum hello-world"
"$BENCH" hello-server --listen "127.0.0.1:$((PORT + 1))" >"$RESULTS/hello.log" 2>&1 &
HELLO=$!
wait_for_health "$((PORT + 1))"
"$BENCH" loadgen --target hello --url "http://127.0.0.1:$((PORT + 1))" --connections "$CONNECTIONS" --duration-secs "$DURATION" --json-out "$RESULTS/hello.json"
kill -INT "$HELLO"
wait "$HELLO" || true

say "baseline: PostgreSQL 15 + pgbench"
if ! command -v pgbench >/dev/null || [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
fi
STARTED_PG=0
if ! pg_lsclusters -h 2>/dev/null | grep -q '^15 *main.*online'; then
    pg_ctlcluster 15 main start
    STARTED_PG=1
fi
as_postgres() { runuser -u postgres -- "$@"; }
as_postgres psql -q -c 'DROP DATABASE IF EXISTS rewardbench' >/dev/null
as_postgres psql -q -c 'CREATE DATABASE rewardbench' >/dev/null
as_postgres psql -q -d rewardbench -f scripts/pg/schema.sql >/dev/null
for clients in 8 "$CONNECTIONS"; do
    as_postgres pgbench -n -q -d rewardbench -f "$PWD/scripts/pg/issuance.sql" -c "$clients" -j 2 -T "$DURATION" >"$RESULTS/pgbench-$clients.txt" 2>&1 \
        || as_postgres pgbench -n -d rewardbench -f "$PWD/scripts/pg/issuance.sql" -c "$clients" -j 2 -T "$DURATION" >"$RESULTS/pgbench-$clients.txt" 2>&1
    grep -E '^(tps|latency average)' "$RESULTS/pgbench-$clients.txt" >&2 || true
done
as_postgres psql -q -c 'DROP DATABASE IF EXISTS rewardbench' >/dev/null
if [ "$STARTED_PG" = 1 ]; then pg_ctlcluster 15 main stop; fi

say "writing BENCHMARKS.md"
python3 scripts/bench_report.py "$RESULTS" "$DURATION" "$CONNECTIONS" "$PARTNERS" >BENCHMARKS.md
cat BENCHMARKS.md
