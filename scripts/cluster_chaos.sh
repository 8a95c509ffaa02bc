#!/usr/bin/env bash
# The cluster chaos run for operators (`reward-bench cluster-chaos`,
# benches/tools/src/cluster_chaos.rs): three real reward-engine nodes on one PostgreSQL
# database under concurrent signed load over many partners whose pools hold an exact number
# of rewards; one node is SIGKILLed and restarted, one SIGSTOPped past the takeover timeout
# and resumed, one cut off from the database; then every key, pool, user and webhook is
# audited through the public API. A non-zero exit on any discrepancy.
#
#   scripts/cluster_chaos.sh                                   # release build, the defaults
#   scripts/cluster_chaos.sh --debug                           # what CI runs (about 25 s)
#   scripts/cluster_chaos.sh --rewards-per-partner 2000 --phase-ms 20000 --partners 64 --workers 48
#
# The database: REWARD_CHAOS_POSTGRES_URL if set (each run makes a schema of its own in it),
# else the project's private test server (scripts/pg/test_server.sh), started here and
# stopped afterwards if this script started it. `reward-bench cluster-chaos --help` lists
# the options.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

profile=release
pass=()
while (($#)); do
    case "$1" in
        --debug) profile=debug ;;
        *) pass+=("$1") ;;
    esac
    shift
done

if [[ -z "${REWARD_CHAOS_POSTGRES_URL:-}" ]]; then
    if [[ -n "${REWARD_TEST_POSTGRES_URL:-}" ]]; then
        REWARD_CHAOS_POSTGRES_URL="$REWARD_TEST_POSTGRES_URL"
    elif bash scripts/pg/test_server.sh running; then
        REWARD_CHAOS_POSTGRES_URL="$(bash scripts/pg/test_server.sh url)"
    else
        REWARD_CHAOS_POSTGRES_URL="$(bash scripts/pg/test_server.sh start)"
        trap 'bash scripts/pg/test_server.sh stop' EXIT
    fi
fi
export REWARD_CHAOS_POSTGRES_URL

# Both binaries, in one profile: the chaos run starts the reward-engine beside it.
if [[ $profile == release ]]; then release=(--release); else release=(); fi
nice -n 10 cargo build "${release[@]}" --quiet -p reward-engine -p reward-bench --bins
say "cluster chaos ($profile build)"
"target/$profile/reward-bench" cluster-chaos "${pass[@]}"
