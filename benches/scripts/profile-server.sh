#!/usr/bin/env bash
# Profiles one server under one load-generator scenario: the command behind
# every server-side profile figure in benches/RESULTS.md.
#
# usage: benches/scripts/profile-server.sh SERVER MODE [loadgen arguments...]
#   SERVER  ssehub | baseline_b
#   MODE    stat    perf stat of the server process for the whole run:
#                   task-clock, context switches, and the write-side and
#                   wake-up syscalls (writev, write, sendmsg, epoll_wait)
#           record  perf record -F 999 -g of the server for the whole run,
#                   then the top of perf report --no-children
#           ss      ss -tmi of the server's connections once a second during
#                   the run; prints the sample with the most bytes queued
#   e.g.    benches/scripts/profile-server.sh ssehub stat --connections 1000 --events 3000
#
# The server runs on CPU 0 and the load generator on CPU 1 (as in
# run-comparison.sh) when there are two CPUs. $SERVER_ARGS is appended to
# the server's command line (e.g. SERVER_ARGS='--stall-timeout 5s'). Output goes to
# $OUT (default $CARGO_TARGET_DIR/profile), binaries come from
# $CARGO_TARGET_DIR/release (default target/h-bench; build them with
# `cargo build --release -p ssehub-benches --bins -p ssehub-tokio --bin ssehub`).
set -euo pipefail
cd "$(dirname "$0")/../.."
server=${1:?usage: profile-server.sh (ssehub|baseline_b) (stat|record|ss) [loadgen args]}
mode=${2:?usage: profile-server.sh (ssehub|baseline_b) (stat|record|ss) [loadgen args]}
shift 2

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/h-bench}"
export RUST_LOG="${RUST_LOG:-warn}"
bin="$CARGO_TARGET_DIR/release"
out="${OUT:-$CARGO_TARGET_DIR/profile}"
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
token=bench-token-0123
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"

server_pin=()
loadgen_pin=()
if [ "$(nproc)" -ge 2 ] && command -v taskset > /dev/null; then
    server_pin=(taskset -c 0)
    loadgen_pin=(taskset -c 1)
fi
case "$server" in
    ssehub) command=("$bin/ssehub" --addr "$addr" --token "$token" --max-clients-per-ip 1000000 --max-clients 1000000) ;;
    baseline_b) command=("$bin/baseline_b_server" --addr "$addr" --token "$token" --capacity 1024) ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
esac
# shellcheck disable=SC2206
command+=(${SERVER_ARGS:-})
"${server_pin[@]}" "${command[@]}" > "$out/$server.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2> /dev/null || true' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2> /dev/null; do
    kill -0 $pid || { echo "the server exited; see $out/$server.log" >&2; exit 1; }
    sleep 0.1
done
echo "== $server (pid $pid) on $addr, $mode, load before: $(cut -d' ' -f1-3 /proc/loadavg)"

case "$mode" in
    stat)
        perf stat -e task-clock,context-switches,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_sendmsg,syscalls:sys_enter_epoll_wait \
            -p "$pid" -o "$out/$server.stat" &
        profiler=$!
        ;;
    record)
        perf record -F 999 -g -p "$pid" -o "$out/$server.perf.data" 2> /dev/null &
        profiler=$!
        ;;
    ss)
        (while kill -0 $pid 2> /dev/null; do
            ss -tmiHn state established "( sport = :$port )" > "$out/ss.$(date +%s%N)" 2> /dev/null || true
            sleep 1
        done) &
        profiler=$!
        ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
esac

"${loadgen_pin[@]}" "$bin/loadgen" --addr "$addr" --server-pid "$pid" --token "$token" --label "$server/$mode" "$@" > "$out/$server.$mode.json"
tail -n 1 "$out/$server.$mode.json"
kill -INT "$profiler" 2> /dev/null || true
wait "$profiler" 2> /dev/null || true
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"

case "$mode" in
    stat) cat "$out/$server.stat" ;;
    record) perf report -i "$out/$server.perf.data" --no-children --percent-limit 1 --stdio -g none 2> /dev/null | grep -v '^#' | grep -v '^$' | head -40 ;;
    ss)
        # The sample whose connections had the most bytes in their send queues.
        best=$(for f in "$out"/ss.*; do echo "$(awk '/^[0-9]/ {s += $2} END {print s + 0}' "$f") $f"; done |
            sort -n | tail -n 1 | cut -d' ' -f2)
        echo "sample with the most bytes queued: $best"
        head -n 20 "$best"
        rm -f "$out"/ss.*
        ;;
esac
