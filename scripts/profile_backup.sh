#!/usr/bin/env bash
# Where the CPU of an online backup goes (issue 11, BENCHMARKS.md "Backup", "Profile first"):
# a release engine filled by PRELOAD_SECS of signed rewards, one backup to warm up, then
# `perf record` on the server during a second backup, and the top symbols by thread.
#
# Usage: scripts/profile_backup.sh   (PRELOAD_SECS=30 PERF_SECS=12; BIN=… to skip the build, with
#        BENCH=its reward-bench [default: the one beside BIN]; needs perf)
set -euo pipefail
cd "$(dirname "$0")/.."
PRELOAD_SECS=${PRELOAD_SECS:-30}
PERF_SECS=${PERF_SECS:-12}
PORT=${PORT:-18950}
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
command -v perf >/dev/null || { echo "perf is not installed (linux-perf)" >&2; exit 2; }
if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet -p reward-engine -p reward-bench
    BIN=target/release/reward-engine
fi
# The load generator.
BENCH=${BENCH:-$(dirname "$BIN")/reward-bench}
need_bench "$BENCH"
WORK=$(mktemp -d)
trap 'kill -INT "${SERVER:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export REWARD_BACKUP_DIRECTORY="$WORK/backups"
"$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
wait_for_health "$PORT"
say "preload: $PRELOAD_SECS s of signed rewards"
"$BENCH" loadgen --url "http://127.0.0.1:$PORT" --partners 100 --duration-secs "$PRELOAD_SECS" --quiet >/dev/null
"$BIN" backup --url "http://127.0.0.1:$PORT"
perf record -F 999 -g -p "$SERVER" -o "$WORK/perf.data" -- sleep "$PERF_SECS" >/dev/null 2>&1 &
PERF=$!
sleep 0.5
say "the profiled backup"
"$BIN" backup --url "http://127.0.0.1:$PORT"
wait "$PERF" || true
perf report -i "$WORK/perf.data" --no-children --sort comm,dso,symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -30
