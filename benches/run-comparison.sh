#!/usr/bin/env bash
# End-to-end comparison of the ssehub server against baseline B (axum +
# tokio broadcast + Sse) over loopback, with the same load generator and
# the same scenarios, each server started fresh on an ephemeral port for
# every run. Prints every run and a table of min / median / max per server
# with the ratio of the medians.
#
# usage: benches/run-comparison.sh [--repeat N] [--quick] [--criterion] [--no-pin] [--only NAME]
#   --repeat N    runs (interleaved pairs) of every scenario (default 5)
#   --quick       small sizes (a smoke-sized comparison, ~30 s)
#   --criterion   also run the criterion benches and print their ratio table
#   --no-pin      do not pin the server and the load generator to cores
#   --only NAME   run one scenario (e.g. tput-1k)
#
# Every run is one interleaved pair: both servers, back to back, the order
# alternating between runs, so drift hits both alike; the table gives
# min / median / max over the runs and the ratio of the medians. With two
# or more CPUs the server runs on CPU 0 and the load generator on CPU 1
# (`taskset`), so neither takes the other's core (the machine's other load
# still shares them: the 1-minute load average is recorded with every run).
#
# Environment: CARGO_TARGET_DIR (default target/h-bench), OUT (results
# directory, default $CARGO_TARGET_DIR/comparison).
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=5
quick=0
criterion=0
pin=1
only=
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --criterion) criterion=1; shift ;;
        --no-pin) pin=0; shift ;;
        --only) only="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/{/^set -e/d;p}' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/h-bench}"
export RUST_LOG="${RUST_LOG:-warn}"
out="${OUT:-$CARGO_TARGET_DIR/comparison}"
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"

# 10 000 connections need 10 000+ descriptors in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open-file limit: $(ulimit -n)"

cargo build --release -p ssehub-benches --bins
cargo build --release -p ssehub-tokio --bin ssehub
bin="$CARGO_TARGET_DIR/release"
token=bench-token-0123

declare -A servers=(
    [ssehub]="$bin/ssehub --addr {addr} --token $token --max-clients-per-ip 1000000 --max-clients 1000000"
    [baseline_b]="$bin/baseline_b_server --addr {addr} --token $token --capacity 1024"
)

# name | loadgen arguments | extra ssehub flags. In the stalled scenario
# ssehub runs with a 5 s write-stall timeout (default 30 s, longer than the
# run); baseline B has no such setting: its lagging receivers skip events
# and its stalled connections stay open. A stalled connection is only seen
# as stalled once the kernel's send buffer (autotuned up to 4 MiB on
# loopback) is full, so that scenario sends 4 KiB events to 200 clients.
if [ "$quick" = 1 ]; then
    scenarios=(
        "tput-1k|--connections 200 --events 500|"
        "fanout-10k|--connections 1000 --events 20 --rate 10|"
        "stalled-5pct|--connections 100 --events 1500 --rate 100 --payload 4096 --stalled-pct 5|--stall-timeout 3s"
    )
else
    scenarios=(
        "tput-1k|--connections 1000 --events 3000|"
        "tput-10k|--connections 10000 --events 300|"
        "fanout-10k|--connections 10000 --events 50 --rate 10|"
        "stalled-5pct|--connections 200 --events 2000 --rate 100 --payload 4096 --stalled-pct 5|--stall-timeout 5s"
    )
fi

# Pinning: server on CPU 0, load generator on CPU 1.
server_pin=()
loadgen_pin=()
if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset > /dev/null; then
    server_pin=(taskset -c 0)
    loadgen_pin=(taskset -c 1)
    echo "pinning: server on CPU 0, load generator on CPU 1"
else
    echo "not pinning (--no-pin, one CPU, or no taskset)"
fi

for ((run = 1; run <= repeat; run++)); do
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r name args extra <<< "$scenario"
        if [ -n "$only" ] && [ "$name" != "$only" ]; then continue; fi
        # Alternate which server goes first, so drift hits both alike.
        order=(ssehub baseline_b)
        if [ $((run % 2)) = 0 ]; then order=(baseline_b ssehub); fi
        for server in "${order[@]}"; do
            label="$server/$name/$run"
            command="${server_pin[*]} ${servers[$server]}"
            if [ "$server" = ssehub ] && [ -n "$extra" ]; then command="$command $extra"; fi
            load=$(cut -d' ' -f1 /proc/loadavg)
            # shellcheck disable=SC2086
            if ! "${loadgen_pin[@]}" "$bin/loadgen" --label "$label" --token "$token" \
                --spawn "$command" --server-log "$out/${server}-${name}-${run}.log" \
                $args > "$out/last.json"; then
                echo "loadgen failed for $label (see $out/${server}-${name}-${run}.log)" >&2
            fi
            # The load average before the run, and whether it was pinned.
            tail -n 1 "$out/last.json" |
                sed "s/^{/{\"load1\":$load,\"pinned\":$([ ${#server_pin[@]} -gt 0 ] && echo true || echo false),/" >> "$results"
            echo "$label: load $load, $(grep -o '"deliveries_per_sec":[0-9.]*' "$out/last.json" | tail -n 1)"
        done
    done
done

echo
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(uptime)"
python3 benches/scripts/comparison_table.py "$results"

if [ "$criterion" = 1 ]; then
    cargo bench -p ssehub-benches -- --warm-up-time 1 --measurement-time 3
    python3 benches/scripts/criterion_table.py "$CARGO_TARGET_DIR/criterion"
fi
