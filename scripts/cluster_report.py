#!/usr/bin/env python3
"""Prints the cluster benchmark's table (scripts/cluster_bench.sh) for BENCHMARKS.md.

Reads the results directory: each load's loadgen summary (<label>.json) and its costs
(<label>.cost: engine CPU ticks, PostgreSQL CPU ticks, commits before/after, rows
before/after, ticks per second), the forwarding metrics of node 1, and the takeover time.
"""

import json
import os
import re
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(__file__))
from bench_report import commit, machine  # noqa: E402


def load(results, label):
    path = os.path.join(results, label + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def cost(results, label):
    path = os.path.join(results, label + ".cost")
    if not os.path.exists(path):
        return None
    engine, postgres, xacts_before, xacts_after, rows_before, rows_after, hz, commits_before, commits_after = (int(x) for x in open(path).read().split())
    return {
        "engine_secs": engine / hz,
        "postgres_secs": postgres / hz,
        "transactions": xacts_after - xacts_before,
        "commits": commits_after - commits_before,
        "rows": rows_after - rows_before,
    }


def forwarded(results, label):
    path = os.path.join(results, label + "-n1.metrics")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    total = sum(float(v) for v in re.findall(r'^reward_cluster_forwarded_requests_total\{outcome="(?:forwarded|retried)"\} (\S+)', text, re.M))
    seconds = re.search(r"^reward_cluster_forward_seconds_sum (\S+)", text, re.M)
    count = re.search(r"^reward_cluster_forward_seconds_count (\S+)", text, re.M)
    mean_ms = float(seconds.group(1)) / float(count.group(1)) * 1000 if seconds and count and float(count.group(1)) > 0 else None
    return {"forwarded": total, "mean_ms": mean_ms}


def main():
    results = sys.argv[1]
    hello = load(results, "hello")
    rows = []
    for label, title in (("embedded", "reference: 1 node, redb + write-ahead log (the default)"), ("one-node", "1 node on PostgreSQL"), ("three-spread", "3 nodes, load spread"), ("three-one-door", "3 nodes, all load on one (⅔ forwarded)")):
        run, spent = load(results, label), cost(results, label)
        if not run or not spent:
            continue
        rewards, seconds = run["succeeded"], run["durationSecs"]
        per_thousand = lambda secs: secs / rewards * 1000 if rewards else float("nan")
        rows.append(
            f"| {title} | {run['succeededPerSec']:,.0f} | {run['p50Ms']:.1f} / {run['p99Ms']:.1f} | "
            f"{per_thousand(spent['engine_secs']):.2f} | {per_thousand(spent['postgres_secs']):.2f} | "
            f"{spent['commits'] / seconds:,.0f} | {rewards / spent['commits'] if spent['commits'] else float('nan'):.1f} | "
            f"{spent['transactions'] / seconds:,.0f} | {spent['rows'] / seconds:,.0f} |"
        )
    takeover = open(os.path.join(results, "takeover.secs")).read().strip() if os.path.exists(os.path.join(results, "takeover.secs")) else "?"
    forward = forwarded(results, "three-one-door")
    print(f"Machine: {machine()}; commit {commit()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; results in `{results}`.\n")
    if hello:
        print(f"HTTP ceiling of the same generator (bare axum hello-world): {hello['succeededPerSec']:,.0f} req/s, p99 {hello['p99Ms']:.1f} ms.\n")
    print("| run | rewards/s | p50 / p99 ms | engine CPU-s per 1,000 rewards | PostgreSQL CPU-s per 1,000 | engine commits/s | rewards per commit | DB transactions/s (reads too) | DB rows written/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    if forward:
        mean = f"{forward['mean_ms']:.2f} ms" if forward["mean_ms"] is not None else "?"
        print(f"\nForwarding (3 nodes, all load on node 1): {forward['forwarded']:,.0f} requests forwarded, mean hop {mean} (the owner's work included).")
    print(f"\nTakeover after a SIGKILL (defaults: heartbeat 1 s, takeover after 5 s): the survivors held every shard {float(takeover):.1f} s after the kill." if takeover != "?" else "")


if __name__ == "__main__":
    main()
