#!/usr/bin/env python3
"""Renders BENCHMARKS.md from one run of scripts/bench.sh (its results directory)."""

import json
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone


def load(results, name):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def pgbench(results, clients):
    path = os.path.join(results, f"pgbench-{clients}.txt")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    tps = re.search(r"tps = ([0-9.]+)", text)
    latency = re.search(r"latency average = ([0-9.]+) ms", text)
    return {"tps": float(tps.group(1)) if tps else None, "latency_ms": float(latency.group(1)) if latency else None}


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Linux {platform.release()}"


def commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    results, duration, connections, partners = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    runs = [
        ("engine, redb, many partners", load(results, "engine-redb-many")),
        ("engine, redb, one hot partner", load(results, "engine-redb-hot")),
        ("engine, sled, many partners", load(results, "engine-sled-many")),
        ("bare axum hello-world (ceiling)", load(results, "hello")),
        ("engine, redb without the write-ahead log, many partners", load(results, "engine-redb-nowal-many")),
    ]
    pg = {clients: pgbench(results, clients) for clients in ("8", connections)}
    baseline = max((entry["tps"] for entry in pg.values() if entry and entry["tps"]), default=None)
    ceiling = runs[3][1]["requestsPerSec"] if runs[3][1] else None

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = []
    out.append("# Benchmarks\n")
    out.append(f"Measured {now} on {machine()}, commit `{commit()}`, by `scripts/bench.sh` "
               f"(DURATION={duration} s per run, CONNECTIONS={connections}, PARTNERS={partners}). "
               "The load generator (`reward-bench loadgen`) runs on the same machine and shares its cores, as do PostgreSQL and pgbench. "
               "These machines are shared and noisy: compare ratios within one run, not figures across runs.\n")
    out.append("## Durable signed submissions (`POST /v1/partner/actions/submit`)\n")
    out.append("Every engine request is HMAC-signed by the generator, verified on the raw bytes, decided by the "
               "partner's actor and acknowledged only after its group commit is durable (fsync). With the write-ahead "
               "log (the default) the durable point is the log's fdatasync and the B-tree is written in bulk behind it; "
               "the last row shows each batch committed straight into redb instead.\n")
    out.append("| run | req/s | succeeded/s | p50 ms | p99 ms | p99.9 ms | statuses | vs PostgreSQL | vs ceiling |")
    out.append("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for label, run in runs:
        if not run:
            out.append(f"| {label} | (not run) | | | | | | | |")
            continue
        statuses = ", ".join(f"{status}: {count}" for status, count in run["statuses"].items())
        vs_pg = f"{run['succeededPerSec'] / baseline:.2f}×" if baseline and "hello" not in label else ""
        vs_ceiling = f"{run['requestsPerSec'] / ceiling:.0%}" if ceiling else ""
        out.append(f"| {label} | {run['requestsPerSec']:.0f} | {run['succeededPerSec']:.0f} | {run['p50Ms']:.2f} | "
                   f"{run['p99Ms']:.2f} | {run['p999Ms']:.2f} | {statuses} | {vs_pg} | {vs_ceiling} |")
    out.append("")
    out.append("## Baseline: the same issuance as one PostgreSQL 15 transaction\n")
    out.append("`scripts/pg/schema.sql` and `scripts/pg/issuance.sql` (idempotency insert, pool debit with a "
               "balance check, user upsert, action and ledger rows, two outbox events), "
               "`pgbench -c N -j 2 -T DURATION`, default `synchronous_commit = on`.\n")
    out.append("| clients | TPS | average latency ms |")
    out.append("|---:|---:|---:|")
    for clients, entry in pg.items():
        if entry:
            out.append(f"| {clients} | {entry['tps']:.0f} | {entry['latency_ms']:.2f} |")
    out.append("")
    out.append("Reproduce: `scripts/bench.sh` (root, for installing PostgreSQL when missing). "
               "Raw outputs are kept in `bench-results/<time>/`. Layer benches: `cargo bench --bench pure_path` "
               "and `cargo bench --bench engine_roundtrip`.\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
