#!/usr/bin/env bash
# TLS against cleartext, end to end: the ssehub server under one load
# generator scenario, over cleartext and over TLS (rustls + ring, ALPN
# http/1.1, a P-256 certificate made here with openssl), in N interleaved
# pairs (the order alternates, so drift hits both alike). Prints every run,
# the min/median/max of each figure, and the TLS/cleartext ratio of the
# medians.
#
# usage: benches/run-tls.sh [--repeat N] [--connections C] [--events E] [--payload B]
#
# Environment: CARGO_TARGET_DIR (default target/h-bench), OUT (results
# directory, default $CARGO_TARGET_DIR/tls).
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=5
connections=1000
events=3000
payload=32
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --events) events="$2"; shift 2 ;;
        --payload) payload="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/h-bench}"
export RUST_LOG="${RUST_LOG:-warn}"
out="${OUT:-$CARGO_TARGET_DIR/tls}"
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

cargo build --release -p ssehub-benches --bin loadgen -p ssehub-tokio --bin ssehub
bin="$CARGO_TARGET_DIR/release"
token=bench-token-0123

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -addext basicConstraints=critical,CA:FALSE \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$out/key.pem" -out "$out/cert.pem" 2>/dev/null

server="$bin/ssehub --addr {addr} --token $token --max-clients-per-ip 1000000 --max-clients 1000000"
for run in $(seq 1 "$repeat"); do
    order=(cleartext tls)
    if [ $((run % 2)) = 0 ]; then order=(tls cleartext); fi
    for mode in "${order[@]}"; do
        command="$server"
        client=()
        if [ "$mode" = tls ]; then
            command="$server --tls-cert $out/cert.pem --tls-key $out/key.pem"
            client=(--tls-ca "$out/cert.pem")
        fi
        # shellcheck disable=SC2086
        if ! "$bin/loadgen" --label "$mode/$run" --token "$token" --spawn "$command" \
            --server-log "$out/$mode-$run.log" "${client[@]}" \
            --connections "$connections" --events "$events" --payload "$payload" > "$out/last.json"; then
            echo "loadgen failed for $mode/$run (see $out/$mode-$run.log)" >&2
            exit 1
        fi
        tail -n 1 "$out/last.json" >> "$results"
    done
done

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
figures = [
    ("deliveries/s", "deliveries_per_sec", 0),
    ("server CPU ns/delivery", "server_cpu_ns_per_delivery", 0),
    ("latency p50 (drain) us", "latency_p50_us", 0),
    ("latency p99 (drain) us", "latency_p99_us", 0),
    ("connects/s", "connects_per_sec", 0),
    ("RSS per connection B", "rss_per_conn_bytes", 0),
]
for r in runs:
    assert r["missing"] == 0 and r["duplicates"] == 0, r["label"]
    print(f'{r["label"]:14} tls={r["tls"]!s:5} {r["deliveries_per_sec"]:>10.0f} deliveries/s  '
          f'{r["server_cpu_ns_per_delivery"] or 0:>7.0f} ns CPU/delivery  p99 {r["latency_p99_us"]:.0f} us')
print()
print("| figure | cleartext min / median / max | TLS min / median / max | TLS / cleartext (medians) |")
print("|---|---|---|---|")
for name, key, _ in figures:
    plain = [r[key] for r in runs if not r["tls"] and r.get(key) is not None]
    tls = [r[key] for r in runs if r["tls"] and r.get(key) is not None]
    if not plain or not tls:
        continue
    fmt = lambda xs: f"{min(xs):.0f} / {statistics.median(xs):.0f} / {max(xs):.0f}"
    print(f"| {name} | {fmt(plain)} | {fmt(tls)} | {statistics.median(tls) / statistics.median(plain):.2f}x |")
PY
