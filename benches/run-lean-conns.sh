#!/usr/bin/env bash
# "Lean connections" (issue 15): idle memory per SSE connection and one
# event to every subscriber, for ssehub (HTTP/1 fast path), ssehub with
# every request through hyper, and baseline B, in interleaved rounds at one
# connection count. Prints each run and a min/median/max table.
#
# usage: benches/run-lean-conns.sh [CONNECTIONS [ROUNDS [SERVERS...]]]
#   CONNECTIONS  idle connections (default 10000; 19900 is this machine's
#                limit: 20,000 open files per process)
#   ROUNDS       interleaved rounds (default 3)
#   SERVERS      any of ssehub ssehub-hyper b (default: all three)
#
# Environment: EVENTS (default 20), INTERVAL_MS (default 250), WORKERS
# (default 4), OUT (JSON lines, default target/lean-conns.jsonl).
# Not run in CI (minutes, and it wants the machine to itself).
set -euo pipefail
cd "$(dirname "$0")/.."
conns="${1:-10000}"
rounds="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(ssehub ssehub-hyper b)
out="${OUT:-target/lean-conns.jsonl}"
cargo build --release -q -p ssehub-benches --bin loadgen_conns
: > "$out"
for round in $(seq "$rounds"); do
    for server in "${servers[@]}"; do
        target/release/loadgen_conns --server "$server" --connections "$conns" \
            --events "${EVENTS:-20}" --interval-ms "${INTERVAL_MS:-250}" \
            --workers "${WORKERS:-4}" --label "$server x$conns round $round" > "$out.run"
        grep -v '^{' "$out.run"
        tail -n 1 "$out.run" >> "$out"
    done
done
rm -f "$out.run"
echo
echo "min / median / max over $rounds rounds, $conns connections ($out):"
jq -rs '
  def stats(f): (map(f) | sort) as $v
    | "\($v[0] | . * 10 | round / 10) / \($v[(length / 2 | floor)] | . * 10 | round / 10) / \($v[-1] | . * 10 | round / 10)";
  group_by(.server)[] |
  "\(.[0].server): RSS/conn B \(stats(.rss_per_conn_bytes)); heap/conn B \(stats(.heap_per_conn_bytes)); open s \(stats(.open_seconds)); p50 ms \(stats(.p50_ms)); p99 ms \(stats(.p99_ms)); max ms \(stats(.max_ms)); CPU/delivery us \(stats(.server_cpu_per_delivery_us)); loadgen CPU s \(stats(.loadgen_cpu_s))"
' "$out"
