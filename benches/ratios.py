#!/usr/bin/env python3
"""Print wagate's benchmark figures and ratios from criterion's output.

usage: python3 benches/ratios.py [target/criterion]
Reads each benchmark's median (new/estimates.json) after `cargo bench`."""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def median_ns(bench):
    path = os.path.join(root, *bench.split("/"), "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def fmt(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


# (what, numerator, denominator, target, how the ratio is read)
rows = [
    ("check on 1M users, gate / raw", "check/gate", "check/raw_sqlite", 1.5, "time"),
    ("check 1M / 10k users", "check_scale/1m", "check_scale/10k", 1.5, "time"),
    ("ingest 1,000 in one tx, gate / raw", "ingest_batch/gate", "ingest_batch/raw_sqlite", 1.4, "time"),
    ("one durable ingest, gate / raw", "ingest_durable/gate", "ingest_durable/raw_sqlite", 1.2, "time"),
    ("8 threads / raw 8 per commit, throughput", "ingest_concurrent/raw_sqlite_8_per_commit", "ingest_concurrent/8_threads", 0.85, "speedup"),
    ("8 threads / gate 8 per commit (coordination)", "ingest_concurrent/gate_8_per_commit", "ingest_concurrent/8_threads", None, "speedup"),
    ("gate / raw, 8 per commit (the gate's writes)", "ingest_concurrent/raw_sqlite_8_per_commit", "ingest_concurrent/gate_8_per_commit", None, "speedup"),
    ("8 threads vs 1, throughput", "ingest_durable/gate", "ingest_concurrent/8_threads", None, "speedup"),
    ("PostgreSQL: check on 1M users, gate / raw", "pg_check/gate", "pg_check/raw", 1.5, "time"),
    ("PostgreSQL: ingest 1,000 in one tx, gate / raw", "pg_ingest_batch/gate", "pg_ingest_batch/raw", 1.4, "time"),
    ("PostgreSQL: one durable ingest, gate / raw", "pg_ingest_durable/gate", "pg_ingest_durable/raw", None, "time"),
    ("PostgreSQL: 8 threads, per event, gate / raw", "pg_ingest_concurrent/8_threads", "pg_ingest_concurrent/raw", 1.3, "time"),
    ("PostgreSQL: gate, 8 threads vs 1, throughput", "pg_ingest_durable/gate", "pg_ingest_concurrent/8_threads", None, "speedup"),
    ("PostgreSQL: raw, 8 threads vs 1, throughput", "pg_ingest_durable/raw", "pg_ingest_concurrent/raw", None, "speedup"),
]

print("| benchmark | median |")
print("|---|---|")
for b in [
    "decide/pure",
    "check/gate", "check/raw_sqlite", "check_scale/10k", "check_scale/1m",
    "ingest_batch/gate", "ingest_batch/raw_sqlite",
    "ingest_durable/gate", "ingest_durable/raw_sqlite",
    "ingest_concurrent/8_threads", "ingest_concurrent/gate_8_per_commit",
    "ingest_concurrent/raw_sqlite_8_per_commit",
    "pg_check/gate", "pg_check/raw",
    "pg_ingest_batch/gate", "pg_ingest_batch/raw",
    "pg_ingest_durable/gate", "pg_ingest_durable/raw",
    "pg_ingest_concurrent/8_threads", "pg_ingest_concurrent/raw",
    "pg_send/gate",
]:
    print(f"| `{b}` | {fmt(median_ns(b))} |")
print()
print("| ratio | value | target | met |")
print("|---|---|---|---|")
d = median_ns("decide/pure")
print(f"| decide/pure | {fmt(d)} | < 1 µs | {'yes' if d is not None and d < 1000 else 'no'} |")
for what, num, den, target, kind in rows:
    a, b = median_ns(num), median_ns(den)
    if a is None or b is None:
        print(f"| {what} | - | {target} | - |")
        continue
    r = a / b
    if target is None:
        print(f"| {what} | {r:.2f}x | - | - |")
    elif kind == "time":
        print(f"| {what} | {r:.2f}x | <= {target}x | {'yes' if r <= target else 'no'} |")
    else:
        print(f"| {what} | {r:.2f}x | >= {target}x | {'yes' if r >= target else 'no'} |")

# pg_send/gate's latency distribution (benches/postgres.rs writes it).
try:
    with open(os.path.join(root, "pg_send", "gate", "latency.json")) as f:
        lat = json.load(f)
    print()
    print(f"pg_send/gate over {lat['sends']} sends: p50 {fmt(lat['p50_ns'])}, "
          f"p99 {fmt(lat['p99_ns'])}, max {fmt(lat['max_ns'])}")
except (OSError, KeyError, ValueError):
    pass

# Gate and raw side by side, alternating (benches/postgres.rs `paired`).
shown = False
for group in ["pg_check", "pg_ingest_batch", "pg_ingest_durable", "pg_ingest_concurrent"]:
    try:
        with open(os.path.join(root, group, "paired.json")) as f:
            p = json.load(f)
    except (OSError, KeyError, ValueError):
        continue
    if not shown:
        print()
        print("| paired (gate and raw alternating) | rounds | gate | raw | gate / raw |")
        print("|---|---|---|---|---|")
        shown = True
    print(f"| {group} | {p['rounds']} | {fmt(p['gate_ns'])} | {fmt(p['raw_ns'])} | {p['ratio']:.2f}x |")
