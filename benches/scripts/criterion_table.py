#!/usr/bin/env python3
"""Ratio tables from criterion's saved estimates (target/.../criterion).

Reads every `*/new/benchmark.json` + `estimates.json` (the latest run) and
prints: the cycle and churn rates, the fan-out cost per delivered frame
with ratios to the floor and the baselines, tick cost per client count,
and codec throughput. Ratios are "times faster than" (> 1: ssehub better).
"""
import json
import os
import sys


def load(root):
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        ns = est["mean"]["point_estimate"]
        lo = est["mean"]["confidence_interval"]["lower_bound"]
        hi = est["mean"]["confidence_interval"]["upper_bound"]
        tp = bench.get("throughput") or {}
        elements = tp.get("Elements") or tp.get("ElementsAndBytes", {}).get("elements")
        nbytes = tp.get("Bytes") or tp.get("BytesDecimal")
        key = (bench["group_id"], bench.get("function_id"), bench.get("value_str"))
        found[key] = {"ns": ns, "lo": lo, "hi": hi, "elements": elements, "bytes": nbytes}
    return found


def per_elem(r):
    return r["ns"] / (r["elements"] or 1)


def main(root):
    d = load(root)
    get = lambda g, f, v=None: d.get((g, f, v))

    print("\n### reserve → welcome → activate → close cycle (A: register (queues `connected`) → subscribe → unsubAll)")
    print("Wall time per cycle (throughput over the threads) and CPU time per cycle (summed over the cycling threads).\n")
    print("| threads | ssehub ns/cycle (wall) | A ns/cycle (wall) | ssehub vs A (wall) | ssehub CPU ns/cycle | A CPU ns/cycle | ssehub vs A (CPU) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for t in ("1", "2"):
        s, a = get("cycle", "ssehub", t), get("cycle", "baseline_a", t)
        sc, ac = get("cycle_cpu", "ssehub", t), get("cycle_cpu", "baseline_a", t)
        wall = f"{s['ns']:.0f} | {a['ns']:.0f} | {a['ns']/s['ns']:.2f}×" if s and a else "n/a | n/a | n/a"
        cpu = f"{sc['ns']:.0f} | {ac['ns']:.0f} | {ac['ns']/sc['ns']:.2f}×" if sc and ac else "n/a | n/a | n/a"
        print(f"| {t} | {wall} | {cpu} |")
    s1, s2 = get("cycle", "ssehub", "1"), get("cycle", "ssehub", "2")
    a1, a2 = get("cycle", "baseline_a", "1"), get("cycle", "baseline_a", "2")
    if s1 and s2 and a1 and a2:
        print(f"\n2 threads / 1 thread, cycles/s (wall): ssehub {s1['ns'] / s2['ns']:.2f}×, A {a1['ns'] / a2['ns']:.2f}×")

    print("\n### subscribe/unsubscribe churn while a thread publishes to 1 000 subscribers of the same topic at a fixed rate")
    print("| | ns per subscribe+unsubscribe | ops/s (each is one op) |")
    print("|---|---:|---:|")
    for f in ("ssehub", "baseline_a"):
        r = get("churn_while_publishing", f)
        if r:
            print(f"| {f} | {r['ns']:.0f} | {2e9/r['ns']:,.0f} |")

    print("\n### publish fan-out, ns per delivered frame: like for like")
    print("Every subscriber's side of the work inside the timing on both sides"
          " (`+drain`; B's `try_recv` + `Event`), and with parked reader tasks woken by"
          " each push (`+wake`, the same waker on both sides).\n")
    impls = ["ssehub+drain", "baseline_a+drain", "baseline_b", "ssehub+wake", "baseline_b+wake"]
    print("| subscribers | " + " | ".join(impls) + " | A+drain / ssehub+drain | B / ssehub+drain | B+wake / ssehub+wake |")
    print("|---:|" + "---:|" * (len(impls) + 3))
    for n in ("1", "100", "10000"):
        row = {i: get("fanout", i, n) for i in impls}
        cells = [f"{per_elem(row[i]):.1f}" if row[i] else "n/a" for i in impls]
        def ratio(x, y):
            return f"{per_elem(row[x]) / per_elem(row[y]):.2f}×" if row[x] and row[y] else "n/a"
        print(f"| {n} | " + " | ".join(cells) + f" | {ratio('baseline_a+drain', 'ssehub+drain')} | {ratio('baseline_b', 'ssehub+drain')} | {ratio('baseline_b+wake', 'ssehub+wake')} |")

    print("\n### publish only, ns per delivered frame (queues drained outside the timing; against the floor)")
    impls = ["floor", "ssehub", "baseline_a"]
    print("| subscribers | " + " | ".join(impls) + " | ssehub / floor | A / ssehub (publish only) |")
    print("|---:|" + "---:|" * (len(impls) + 2))
    for n in ("1", "100", "10000"):
        row = {i: get("fanout", i, n) for i in impls}
        cells = [f"{per_elem(row[i]):.1f}" if row[i] else "n/a" for i in impls]
        def ratio(x, y):
            return f"{per_elem(row[x]) / per_elem(row[y]):.2f}×" if row[x] and row[y] else "n/a"
        print(f"| {n} | " + " | ".join(cells) + f" | {ratio('ssehub', 'floor')} | {ratio('baseline_a', 'ssehub')} |")

    print("\n### tick, ns per call (heartbeat deadlines due per call: 0, 10, 1 000)")
    print("| clients | 0 due | 10 due | 1 000 due | ns per due client (1 000) |")
    print("|---:|---:|---:|---:|---:|")
    for c in ("10000", "100000"):
        rs = [get("tick", f"{c}_clients", v) for v in ("0", "10", "1000")]
        if all(rs):
            print(f"| {int(c):,} | {rs[0]['ns']:.0f} | {rs[1]['ns']:.0f} | {rs[2]['ns']:,.0f} | {rs[2]['ns']/1000:.0f} |")

    print("\n### codec throughput, MB/s (10^6 bytes of encoded stream per second)")
    print("| operation | small | 4 KiB |")
    print("|---|---:|---:|")
    for g, f in (("encode", "ssehub"), ("encode", "axum"), ("decode", "ssehub"), ("decode", "ssehub_chunked")):
        cells = []
        for v in ("small", "4KiB"):
            r = get(g, f, v)
            cells.append(f"{r['bytes'] / r['ns'] * 1e3:,.0f}" if r and r["bytes"] else "n/a")
        label = f"{g} {f}" + (" (axum Event, reference)" if f == "axum" else "")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/h-bench/criterion")
