#!/bin/sh
# Syscalls of the server during the publish phase of `loadgen_conns`
# (issue 15, item 4): strace attaches to the server's process (every
# thread) once the worker processes are up, so neither the connection
# setup nor the workers are counted. strace slows the server down: read
# the counts per delivery, not the times.
#
# usage: benches/scripts/lean-strace.sh [SERVER [CONNECTIONS [EVENTS]]]
#   (defaults: ssehub 5000 10); the counts go to target/lean-strace-SERVER.txt
set -eu
cd "$(dirname "$0")/../.."
server="${1:-ssehub}"; conns="${2:-5000}"; events="${3:-10}"
cargo build --release -q -p ssehub-benches --bin loadgen_conns
target/release/loadgen_conns --server "$server" --connections "$conns" \
    --events "$events" --interval-ms 300 --settle-ms 4000 > "target/lean-strace-$server.out" 2>&1 &
lg=$!
while ! pgrep -P "$lg" > /dev/null; do sleep 0.2; done
# The workers open their connections within ~3 s; the settle wait follows.
sleep 3.5
timeout 120 strace -c -f -p "$lg" -o "target/lean-strace-$server.txt" &
st=$!
wait "$lg"
kill -INT "$st" 2> /dev/null || true
wait "$st" || true
grep -v '^{' "target/lean-strace-$server.out"
head -n 12 "target/lean-strace-$server.txt"
