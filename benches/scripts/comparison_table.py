#!/usr/bin/env python3
"""Tables of loadgen JSON lines (label = server/scenario/run).

Prints, per scenario, every run (with the machine's load average before it
and whether server and load generator were pinned), then every figure for
ssehub and baseline B as min / median / max over the runs, and the ratio of
the medians, "how many times better ssehub is" (> 1: ssehub better). All
runs come from the same invocation of run-comparison.sh, in interleaved
pairs.

At full speed (no --rate) the publish -> receive figures measure how long
the queues take to drain, not the latency of one event: they are labelled
"drain time" there.
"""
import json
import statistics
import sys
from collections import defaultdict

# (key, label, higher_is_better, unit scale, format)
METRICS = [
    ("deliveries_per_sec", "deliveries/s", True, 1, "{:,.0f}"),
    ("latency_p50_us", "{lat} p50 (ms)", False, 1e-3, "{:.2f}"),
    ("latency_p99_us", "{lat} p99 (ms)", False, 1e-3, "{:.2f}"),
    ("latency_p999_us", "{lat} p99.9 (ms)", False, 1e-3, "{:.2f}"),
    ("latency_max_us", "{lat} max (ms)", False, 1e-3, "{:.2f}"),
    ("fanout_p50_us", "fan-out done p50 (ms)", False, 1e-3, "{:.2f}"),
    ("fanout_max_us", "fan-out done max (ms)", False, 1e-3, "{:.2f}"),
    ("connects_per_sec", "connections/s", True, 1, "{:,.0f}"),
    ("rss_per_conn_bytes", "server RSS/idle conn (B)", False, 1, "{:,.0f}"),
    ("server_cpu_ns_per_delivery", "server CPU ns/delivery", False, 1, "{:,.0f}"),
    ("loadgen_cpu_secs", "loadgen CPU (s)", None, 1, "{:.2f}"),
    ("missing", "missing deliveries", None, 1, "{:.0f}"),
    ("stalled_closed", "stalled conns closed", None, 1, "{:.0f}"),
]


def spread(values, scale, fmt):
    """`min / median / max`, or the one value, or n/a."""
    if not values:
        return "n/a"
    values = sorted(v * scale for v in values)
    if len(values) == 1:
        return fmt.format(values[0])
    return " / ".join(fmt.format(v) for v in (values[0], statistics.median(values), values[-1]))


def main(path):
    runs = defaultdict(list)
    in_order = defaultdict(list)
    order = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            server, scenario, _run = r["label"].split("/")
            runs[(scenario, server)].append(r)
            in_order[scenario].append(r)
            if scenario not in order:
                order.append(scenario)
    for scenario in order:
        a, b = runs.get((scenario, "ssehub"), []), runs.get((scenario, "baseline_b"), [])
        sample = (a or b)[0]
        full_speed = not sample["rate"]
        lat = "drain time" if full_speed else "latency"
        print(f"\n### {scenario}: {sample['connections']} connections"
              f" ({sample['stalled']} stalled), {sample['events']} events"
              f" at {'full speed' if full_speed else str(sample['rate']) + '/s'},"
              f" payload {sample['payload']} B; runs: ssehub {len(a)}, baseline B {len(b)}")
        print("\nruns (in the order they ran):\n")
        print("| run | server | load avg (1 min) before | pinned | deliveries/s | server CPU ns/delivery | "
              f"{lat} p99 (ms) |")
        print("|---|---|---:|---|---:|---:|---:|")
        for r in in_order[scenario]:
            server, _, run = r["label"].split("/")
            cpu = r.get("server_cpu_ns_per_delivery")
            p99 = r.get("latency_p99_us")
            cpu = f"{cpu:,.0f}" if cpu is not None else "n/a"
            p99 = f"{p99 / 1e3:.2f}" if p99 is not None else "n/a"
            pinned = {True: "yes", False: "no"}.get(r.get("pinned"), "n/a")
            print(f"| {run} | {server} | {r.get('load1', 'n/a')} | {pinned} |"
                  f" {r['deliveries_per_sec']:,.0f} | {cpu} | {p99} |")
        print("\n| figure | ssehub min / median / max | baseline B min / median / max | ssehub vs B (medians) |")
        print("|---|---:|---:|---:|")
        for key, label, higher, scale, fmt in METRICS:
            label = label.format(lat=lat)
            va = [r[key] for r in a if r.get(key) is not None]
            vb = [r[key] for r in b if r.get(key) is not None]
            ma = statistics.median(va) if va else None
            mb = statistics.median(vb) if vb else None
            sa, sb = spread(va, scale, fmt), spread(vb, scale, fmt)
            ratio = ""
            if higher is not None and ma and mb:
                ratio = f"{(ma / mb) if higher else (mb / ma):.2f}×"
            if key == "stalled_closed":
                sa = f"{sa} (of {sample['stalled']})"
                sb = f"{sb} (of {sample['stalled']})"
            print(f"| {label} | {sa} | {sb} | {ratio} |")
        metrics = [r.get("server_close_metrics") for r in a if r.get("server_close_metrics")]
        if metrics and sample["stalled"]:
            print(f"\nssehub /metrics close counters (last run): `{metrics[-1]}`")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/h-bench/comparison/results.jsonl")
