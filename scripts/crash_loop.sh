#!/usr/bin/env bash
# The crash loop for operators (`reward-bench crash-loop`, benches/tools/src/crash_loop.rs):
# SIGKILLs the real server (the reward-engine binary of the same build) at random moments
# under concurrent signed load, restarts it on the same data directory, and then audits every
# key and pool through the public API. One run per backend: a progress line per kill, a
# summary per backend, and a non-zero exit on any discrepancy.
#
#   scripts/crash_loop.sh --kills 100 --seed 42                     # release build, redb and sled
#   scripts/crash_loop.sh --debug --kills 5 --duration-secs-max 40  # what CI runs
#   scripts/crash_loop.sh --backends sled --no-wal --kills 20       # any crash-loop option passes through
#
# `reward-bench crash-loop --help` lists the options (workers, partners, kill delays, the
# log on or off, a work directory to keep, --json-out).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

profile=release
backends="redb sled"
pass=()
while (($#)); do
    case "$1" in
        --debug) profile=debug ;;
        --backends) backends="$2"; shift ;;
        *) pass+=("$1") ;;
    esac
    shift
done

# Both binaries, in one profile: the crash loop starts the reward-engine beside it.
if [[ $profile == release ]]; then release=(--release); else release=(); fi
nice -n 10 cargo build "${release[@]}" --quiet -p reward-engine -p reward-bench --bins
bin="target/$profile/reward-bench"

failed=()
for backend in $backends; do
    say "crash loop on $backend ($profile build)"
    "$bin" crash-loop --backend "$backend" "${pass[@]}" || failed+=("$backend")
done
if ((${#failed[@]})); then
    echo "crash loop FAILED on: ${failed[*]}" >&2
    exit 1
fi
say "crash loop: no discrepancy on $backends"
