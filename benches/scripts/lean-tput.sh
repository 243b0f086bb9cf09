#!/bin/bash
# End-to-end deliveries/s at 1,000 connections (issue 15, item 5): the
# tput-1k scenario of run-comparison.sh for ssehub (HTTP/1 fast path),
# ssehub with --http1-fast-path false, and baseline B, interleaved, ROUNDS
# rounds; prints min/median/max per server.
#
# usage: benches/scripts/lean-tput.sh [ROUNDS]     (default 5)
# Environment: B_SERVER (baseline B's binary, default
# target/release/baseline_b_server: build it with TCP_NODELAY, issue 15
# item 0), OUT (default target/lean-tput.jsonl), PIN (default 1: the server
# on CPU 0 and the load generator on CPU 1 with taskset, as run-comparison.sh
# does; PIN=0 lets the scheduler place both).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-5}"
out="${OUT:-target/lean-tput.jsonl}"
bin=target/release
b="${B_SERVER:-$bin/baseline_b_server}"
cargo build --release -q -p ssehub-benches --bin loadgen --bin baseline_b_server -p ssehub-tokio --bin ssehub
server_pin=""
loadgen_pin=()
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset > /dev/null; then
    server_pin="taskset -c 0 "
    loadgen_pin=(taskset -c 1)
fi
ssehub="$server_pin$bin/ssehub --addr {addr} --token bench-token-0123 --max-clients-per-ip 1000000 --max-clients 1000000"
: > "$out"
for run in $(seq "$rounds"); do
    for server in fast hyper b; do
        case $server in
            fast) cmd="$ssehub" ;;
            hyper) cmd="$ssehub --http1-fast-path false" ;;
            b) cmd="$server_pin$b --addr {addr} --token bench-token-0123 --capacity 1024" ;;
        esac
        "${loadgen_pin[@]}" "$bin/loadgen" --label "$server" --token bench-token-0123 --spawn "$cmd" \
            --connections 1000 --events 3000 | tail -n 1 >> "$out"
    done
done
jq -rs '
  def stats(f): (map(f) | sort) as $v | "\($v[0] | round) / \($v[(length / 2 | floor)] | round) / \($v[-1] | round)";
  group_by(.label)[] | "\(.[0].label): deliveries/s \(stats(.deliveries_per_sec))"
' "$out"
