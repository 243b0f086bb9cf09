#!/usr/bin/env python3
"""Median table of loadgen JSON lines (label = server/scenario/run).

Prints, per scenario, every figure for ssehub and baseline B and the ratio
"how many times better ssehub is" (> 1: ssehub better), computed from the
medians of runs made in the same invocation of run-comparison.sh.
"""
import json
import statistics
import sys
from collections import defaultdict

# (key, label, higher_is_better, unit scale, format)
METRICS = [
    ("deliveries_per_sec", "deliveries/s", True, 1, "{:,.0f}"),
    ("latency_p50_us", "latency p50 (ms)", False, 1e-3, "{:.2f}"),
    ("latency_p99_us", "latency p99 (ms)", False, 1e-3, "{:.2f}"),
    ("latency_p999_us", "latency p99.9 (ms)", False, 1e-3, "{:.2f}"),
    ("latency_max_us", "latency max (ms)", False, 1e-3, "{:.2f}"),
    ("fanout_p50_us", "fan-out done p50 (ms)", False, 1e-3, "{:.2f}"),
    ("fanout_max_us", "fan-out done max (ms)", False, 1e-3, "{:.2f}"),
    ("connects_per_sec", "connections/s", True, 1, "{:,.0f}"),
    ("rss_per_conn_bytes", "server RSS/idle conn (B)", False, 1, "{:,.0f}"),
    ("server_cpu_ns_per_delivery", "server CPU ns/delivery", False, 1, "{:,.0f}"),
    ("loadgen_cpu_secs", "loadgen CPU (s)", None, 1, "{:.2f}"),
    ("missing", "missing deliveries", None, 1, "{:.0f}"),
    ("stalled_closed", "stalled conns closed", None, 1, "{:.0f}"),
]


def main(path):
    runs = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            server, scenario, _run = r["label"].split("/")
            runs[(scenario, server)].append(r)
    scenarios = sorted({s for s, _ in runs}, key=lambda s: list(dict.fromkeys(s2 for s2, _ in runs)).index(s))
    for scenario in scenarios:
        a, b = runs.get((scenario, "ssehub"), []), runs.get((scenario, "baseline_b"), [])
        sample = (a or b)[0]
        print(f"\n### {scenario}: {sample['connections']} connections"
              f" ({sample['stalled']} stalled), {sample['events']} events"
              f" at {'full speed' if not sample['rate'] else str(sample['rate']) + '/s'},"
              f" payload {sample['payload']} B; runs: ssehub {len(a)}, baseline B {len(b)}")
        print("| figure | ssehub | baseline B | ssehub vs B |")
        print("|---|---:|---:|---:|")
        for key, label, higher, scale, fmt in METRICS:
            va = [r[key] for r in a if r.get(key) is not None]
            vb = [r[key] for r in b if r.get(key) is not None]
            ma = statistics.median(va) if va else None
            mb = statistics.median(vb) if vb else None
            sa = fmt.format(ma * scale) if ma is not None else "n/a"
            sb = fmt.format(mb * scale) if mb is not None else "n/a"
            ratio = ""
            if higher is not None and ma and mb:
                ratio = f"{(ma / mb) if higher else (mb / ma):.2f}×"
            if key == "stalled_closed":
                sa = f"{sa}/{sample['stalled']}"
                sb = f"{sb}/{sample['stalled']}"
            print(f"| {label} | {sa} | {sb} | {ratio} |")
        metrics = [r.get("server_close_metrics") for r in a if r.get("server_close_metrics")]
        if metrics and sample["stalled"]:
            print(f"\nssehub /metrics close counters (last run): `{metrics[-1]}`")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/h-bench/comparison/results.jsonl")
