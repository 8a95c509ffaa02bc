#!/usr/bin/env bash
# What an online backup costs the reward path (issue 11), for BENCHMARKS.md "Backup, restore
# and verify":
#   1. preload: the store is filled with PRELOAD_SECS of signed rewards (as fast as they go),
#      so a backup copies a store of real size;
#   2. ROUNDS rounds of phases, alternating so drift on a shared machine hits all alike:
#      "quiet": DURATION s of signed rewards as fast as they go, no backup;
#      "backup-nN": the same load while `reward-engine backup` runs back to back the whole
#      time, the server restarted with backup.niceness N for each N in NICENESS;
#   3. restore of the last backup into a new directory (timed), then `verify` on it when
#      the binary has that command.
# Throughput and p99 per phase, the backups' durations and sizes, and the ratio
# backup/quiet land in $RESULTS/summary.md. Everything is on 127.0.0.1, bounded in time.
#
# Usage: scripts/backup_bench.sh   (PRELOAD_SECS=60 DURATION=20 ROUNDS=2 PARTNERS=100
#        CONNECTIONS=64 STORE=redb NICENESS="0 10"; BIN=another/reward-engine to skip the build,
#        with BENCH=its reward-bench [default: the one beside BIN])
set -euo pipefail
cd "$(dirname "$0")/.."

PRELOAD_SECS=${PRELOAD_SECS:-60}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
PARTNERS=${PARTNERS:-100}
CONNECTIONS=${CONNECTIONS:-64}
STORE=${STORE:-redb}
NICENESS=${NICENESS:-0 10}
PORT=${PORT:-18900}
RESULTS=${RESULTS:-bench-results/backup-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

if [ -z "${BIN:-}" ]; then
    say "building the release binaries"
    cargo build --release --quiet -p reward-engine -p reward-bench
    BIN=target/release/reward-engine
fi
# The load generator.
BENCH=${BENCH:-$(dirname "$BIN")/reward-bench}
need_bench "$BENCH"

WORK=$(mktemp -d)
DATA="$WORK/data"
export REWARD_BACKUP_DIRECTORY="$WORK/backups"
export REWARD_BACKUP_RETENTION=2
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill -INT "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

start_server() { # niceness
    REWARD_BACKUP_NICENESS=$1 "$BIN" serve --data-dir "$DATA" --store "$STORE" --listen "127.0.0.1:$PORT" >>"$RESULTS/server.log" 2>&1 &
    server_pid=$!
    wait_for_health "$PORT"
}
stop_server() {
    kill -INT "$server_pid"
    wait "$server_pid" || true
    server_pid=
}
start_server 10

load() { # label seconds
    "$BENCH" loadgen --url "http://127.0.0.1:$PORT" --partners "$PARTNERS" --connections "$CONNECTIONS" \
        --duration-secs "$2" --json-out "$RESULTS/loadgen-$1.json" --quiet >"$RESULTS/loadgen-$1.out"
}

say "preload: $PRELOAD_SECS s of signed rewards into $STORE"
load preload "$PRELOAD_SECS"

# Backs up back to back until the file $1 exists; one line per backup into $2.
backups_until() { # stop-file out-file
    while [ ! -e "$1" ]; do
        local started ended
        started=$(date +%s.%N)
        "$BIN" backup --url "http://127.0.0.1:$PORT" --json >"$WORK/last-backup.json"
        ended=$(date +%s.%N)
        python3 - "$WORK/last-backup.json" "$started" "$ended" >>"$2" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
m = answer["manifest"]
print(json.dumps({"path": answer["path"], "records": m["records"], "bytes": m["bytes"], "sequence": m["sequence"],
                  "server_ms": m["durationMs"], "wall_s": float(sys.argv[3]) - float(sys.argv[2])}))
PY
    done
}

for round in $(seq 1 "$ROUNDS"); do
    say "round $round: quiet, $DURATION s"
    load "quiet-$round" "$DURATION"
    for niceness in $NICENESS; do
        stop_server
        start_server "$niceness"
        say "round $round: backups back to back under the same load, niceness $niceness, $DURATION s"
        rm -f "$WORK/stop"
        backups_until "$WORK/stop" "$RESULTS/backups-n$niceness-$round.jsonl" &
        backup_loop=$!
        load "backup-n$niceness-$round" "$DURATION"
        touch "$WORK/stop"
        wait "$backup_loop"
    done
    stop_server
    start_server 10
done

last=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["path"])' "$(ls -t "$RESULTS"/backups-*.jsonl | head -1)")
say "restore of $last into a new directory"
restore_started=$(date +%s.%N)
"$BIN" restore --from "$last" --data-dir "$WORK/restored" >"$RESULTS/restore.out" 2>"$RESULTS/restore.log"
restore_ended=$(date +%s.%N)
echo "$restore_started $restore_ended" >"$RESULTS/restore-times.txt"
if "$BIN" verify --help >/dev/null 2>&1; then
    say "verify of the restored directory"
    verify_started=$(date +%s.%N)
    /usr/bin/time -v "$BIN" verify --data-dir "$WORK/restored" >"$RESULTS/verify.out" 2>"$RESULTS/verify.log" || true
    verify_ended=$(date +%s.%N)
    echo "$verify_started $verify_ended" >"$RESULTS/verify-times.txt"
fi

python3 scripts/backup_report.py "$RESULTS" "$ROUNDS" "$STORE" "$NICENESS" | tee "$RESULTS/summary.md"
