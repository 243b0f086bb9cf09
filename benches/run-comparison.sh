#!/usr/bin/env bash
# End-to-end comparison of the ssehub server against baseline B (axum +
# tokio broadcast + Sse) over loopback, with the same load generator and
# the same scenarios, each server started fresh on an ephemeral port for
# every run. Prints a table of medians and ssehub/baseline ratios.
#
# usage: benches/run-comparison.sh [--repeat N] [--quick] [--criterion]
#   --repeat N    runs of every scenario per server (default 3; medians)
#   --quick       small sizes (a smoke-sized comparison, ~30 s)
#   --criterion   also run the criterion benches and print their ratio table
#
# Environment: CARGO_TARGET_DIR (default target/h-bench), OUT (results
# directory, default $CARGO_TARGET_DIR/comparison).
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=3
quick=0
criterion=0
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --criterion) criterion=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
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

for ((run = 1; run <= repeat; run++)); do
    for scenario in "${scenarios[@]}"; do
        IFS='|' read -r name args extra <<< "$scenario"
        # Alternate which server goes first, so drift hits both alike.
        order=(ssehub baseline_b)
        if [ $((run % 2)) = 0 ]; then order=(baseline_b ssehub); fi
        for server in "${order[@]}"; do
            label="$server/$name/$run"
            command="${servers[$server]}"
            if [ "$server" = ssehub ] && [ -n "$extra" ]; then command="$command $extra"; fi
            # shellcheck disable=SC2086
            if ! "$bin/loadgen" --label "$label" --token "$token" \
                --spawn "$command" --server-log "$out/${server}-${name}-${run}.log" \
                $args > "$out/last.json"; then
                echo "loadgen failed for $label (see $out/${server}-${name}-${run}.log)" >&2
            fi
            tail -n 1 "$out/last.json" >> "$results"
        done
    done
done

echo
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
python3 benches/scripts/comparison_table.py "$results"

if [ "$criterion" = 1 ]; then
    cargo bench -p ssehub-benches -- --warm-up-time 1 --measurement-time 3
    python3 benches/scripts/criterion_table.py "$CARGO_TARGET_DIR/criterion"
fi
