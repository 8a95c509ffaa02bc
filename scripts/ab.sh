#!/usr/bin/env bash
# A/B throughput of the reward path: a base revision against the working tree, alternating
# runs under the same load generator (this tree's reward-bench), so a shared machine's drift hits both.
#
# Usage: scripts/ab.sh BASE_REV [ROUNDS] [DURATION_SECS]
#   builds BASE_REV in a temporary worktree (its own target dir), then runs
#   `loadgen --partners 100 --connections 64` ROUNDS times against each, redb + log.
#   BASE_BIN=path uses a binary already built from BASE instead.
# Prints one line per run and the mean ratio new/base.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: scripts/ab.sh BASE_REV [ROUNDS] [DURATION_SECS]}
ROUNDS=${2:-3}
DURATION=${3:-10}
PORT=${PORT:-18710}
WORK=$(mktemp -d)
trap 'git worktree remove --force "$WORK/tree" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

echo "==> building this tree and $BASE (release)" >&2
cargo build --release --quiet -p reward-engine -p reward-bench
NEW=target/release/reward-engine
LOADGEN=target/release/reward-bench
if [ -n "${BASE_BIN:-}" ]; then
    # A base binary built earlier from BASE (e.g. while other work used the CPU).
    OLD=$BASE_BIN
else
    git worktree add --quiet --detach "$WORK/tree" "$BASE"
    (cd "$WORK/tree" && CARGO_TARGET_DIR="${BASE_TARGET_DIR:-$WORK/target}" cargo build --release --quiet)
    OLD=${BASE_TARGET_DIR:-$WORK/target}/release/reward-engine
fi

run() { # label binary
    local data pid
    data=$(mktemp -d)
    "$2" serve --data-dir "$data" --listen "127.0.0.1:$PORT" >"$WORK/$1.log" 2>&1 &
    pid=$!
    wait_for_health "$PORT"
    "$LOADGEN" loadgen --url "http://127.0.0.1:$PORT" --connections 64 --duration-secs "$DURATION" --partners 100 --json-out "$WORK/$1.json" >/dev/null 2>&1
    kill -INT "$pid"
    wait "$pid" || true
    rm -rf "$data"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], round(d['succeededPerSec']), d['p50Ms'], d['p99Ms'], d['statuses'])" "$WORK/$1.json" "$1"
}

echo "label succeeded/s p50_ms p99_ms statuses"
for round in $(seq 1 "$ROUNDS"); do
    run "base-$round" "$OLD"
    run "new-$round" "$NEW"
done
python3 - "$WORK" "$ROUNDS" <<'PY'
import json, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rate = lambda label: json.load(open(f"{work}/{label}.json"))["succeededPerSec"]
base = sum(rate(f"base-{r}") for r in range(1, rounds + 1)) / rounds
new = sum(rate(f"new-{r}") for r in range(1, rounds + 1)) / rounds
print(f"mean base {base:.0f}/s, new {new:.0f}/s, new/base {new / base:.2f}")
PY
