#!/bin/bash
# End-to-end deliveries/s at 1,000 connections (issue 15, item 5): the
# tput-1k scenario of run-comparison.sh for ssehub (HTTP/1 fast path),
# ssehub with --http1-fast-path false, and baseline B, interleaved, ROUNDS
# rounds; prints min/median/max per server.
#
# usage: benches/scripts/lean-tput.sh [ROUNDS]     (default 5)
# Environment: B_SERVER (baseline B's binary, default
# target/release/baseline_b_server: build it with TCP_NODELAY, issue 15
# item 0), OUT (default target/lean-tput.jsonl).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-5}"
out="${OUT:-target/lean-tput.jsonl}"
bin=target/release
b="${B_SERVER:-$bin/baseline_b_server}"
cargo build --release -q -p ssehub-benches --bin loadgen --bin baseline_b_server -p ssehub-tokio --bin ssehub
ssehub="$bin/ssehub --addr {addr} --token bench-token-0123 --max-clients-per-ip 1000000 --max-clients 1000000"
: > "$out"
for run in $(seq "$rounds"); do
    for server in fast hyper b; do
        case $server in
            fast) cmd="$ssehub" ;;
            hyper) cmd="$ssehub --http1-fast-path false" ;;
            b) cmd="$b --addr {addr} --token bench-token-0123 --capacity 1024" ;;
        esac
        "$bin/loadgen" --label "$server" --token bench-token-0123 --spawn "$cmd" \
            --connections 1000 --events 3000 | tail -n 1 >> "$out"
    done
done
jq -rs '
  def stats(f): (map(f) | sort) as $v | "\($v[0] | round) / \($v[(length / 2 | floor)] | round) / \($v[-1] | round)";
  group_by(.label)[] | "\(.[0].label): deliveries/s \(stats(.deliveries_per_sec))"
' "$out"
