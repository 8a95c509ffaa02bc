#!/usr/bin/env python3
"""Turns one scripts/webhook_bench.sh run into a markdown table (stdout and report.md)."""
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

results, rate, duration, partners = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def load(name):
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def metric(label, name):
    path = results / f"metrics-{label}.txt"
    total = 0.0
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
lines = [
    f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {platform.node()} ({cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores), "
    f"`scripts/webhook_bench.sh` with RATE={rate} DURATION={duration} PARTNERS={partners}: load generator, engine and sinks on the same cores.",
    "",
    "| phase | actions/s (paced at {}) | deliveries | in the busiest second | mean over the load window | last delivery after the load began | lag p50 / p99 (healthy sink) | exhausted / pending at the end |".format(rate),
    "|---|---|---|---|---|---|---|---|",
]
for label in ["steady", "isolation"]:
    loadgen, sink = load(f"loadgen-{label}.json"), load(f"sink-{label}.json")
    if not loadgen or not sink:
        continue
    per_second = {int(second): count for second, count in sink["perSecond"].items()}
    first = min(per_second) if per_second else 0
    window = sum(count for second, count in per_second.items() if first <= second < first + duration)
    last = max(per_second) - first + 1 if per_second else 0
    created = metric(label, "reward_webhook_deliveries_created_total")
    settled = metric(label, "reward_webhook_deliveries_settled_total")
    failed = metric(label, 'reward_webhook_deliveries_settled_total{status="failed"}')
    lines.append(
        f"| {label} | {loadgen['succeededPerSec']:,.0f} | {sink['received']:,} ({sink['distinctEvents']:,} distinct) | {sink['peakPerSec']:,}/s | "
        f"{window / duration:,.0f}/s | {last} s | {sink['lagP50Ms']:,} / {sink['lagP99Ms']:,} ms | {failed:,.0f} / {created - settled:,.0f} |"
    )
baseline = load("loadgen-baseline.json")
if baseline:
    steady = load("loadgen-steady.json")
    ratio = steady["succeededPerSec"] / baseline["succeededPerSec"] if steady else float("nan")
    lines += ["", f"Baseline in the same run (no endpoints, same pacing): {baseline['succeededPerSec']:,.0f} actions/s; "
              f"with every event delivered the reward path kept {ratio:.2f} of it."]
drain, drain_loadgen = load("sink-drain.json"), load("loadgen-drain.json")
if drain and drain["activeSecs"] > 0:
    lines += ["", f"Drain (dispatcher alone, whole backlog due at once, sink on the same cores): {drain['received']:,} deliveries "
              f"({drain['distinctEvents']:,} distinct) in {drain['activeSecs']:.1f} s = {drain['received'] / drain['activeSecs']:,.0f}/s, "
              f"busiest second {drain['peakPerSec']:,}/s; backlog left {metric('drain', 'reward_webhook_deliveries_created_total') - metric('drain', 'reward_webhook_deliveries_settled_total'):,.0f}."]
report = "\n".join(lines)
print(report)
(results / "report.md").write_text(report + "\n")
