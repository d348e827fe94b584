#!/usr/bin/env bash
# echo_cost.sh BIN_DIR EXECUTOR [CLIENTS] [ROUNDS]
#
# User-space instructions and syscalls per echo round trip of `echo_server --loops 1
# --executor EXECUTOR` (issue 4, "Speed"): the server runs under callgrind; after a warm-up
# of CLIENTS x 200 ping-pongs the counters are zeroed (callgrind_control -z), CLIENTS x ROUNDS
# 64-byte ping-pongs run, the counters are dumped and Ir is divided by the round trips. The
# syscalls come from a second, uninstrumented server: strace -c attached to all its threads
# for the same measured load. Everything runs on 127.0.0.1 and stops by itself.
set -euo pipefail

bin=${1:?usage: echo_cost.sh BIN_DIR inline|pool [CLIENTS] [ROUNDS]}
executor=${2:?usage: echo_cost.sh BIN_DIR inline|pool [CLIENTS] [ROUNDS]}
clients=${3:-8}
rounds=${4:-2000}
warm=200
work=$(mktemp -d /tmp/echo_cost.XXXXXX)
server_pid=""

cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ -n "${ECHO_COST_KEEP:-}" ]]; then echo "echo_cost: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# start_server PREFIX... : starts echo_server under PREFIX, sets server_pid and addr.
start_server() {
  "$@" "$bin/echo_server" --listen 127.0.0.1:0 --loops 1 --executor "$executor" \
    >"$work/out" 2>"$work/err" &
  server_pid=$!
  for _ in $(seq 1 600); do
    if grep -q '^listening on ' "$work/out"; then
      addr=$(sed -n 's/^listening on //p' "$work/out" | head -n1)
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "echo_cost: echo_server did not start:" >&2
  cat "$work/err" >&2
  exit 1
}

stop_server() {
  kill -TERM "$server_pid"
  wait "$server_pid" || { echo "echo_cost: echo_server exited with $?" >&2; exit 1; }
  server_pid=""
}

load() {  # load ROUNDS
  "$bin/load_client" --connect "$addr" --connections "$clients" --size 64 --rounds "$1" \
    --timeout 600 --json
}

# 1. Instructions.
start_server valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p"
load "$warm" >/dev/null
callgrind_control -z "$server_pid" >/dev/null 2>&1
load "$rounds" >"$work/load.json"
callgrind_control -d "$server_pid" >/dev/null 2>&1
dump=$(ls -t "$work"/callgrind.*.* 2>/dev/null | head -n1 || true)
stop_server
if [[ -z "$dump" ]]; then
  echo "echo_cost: no callgrind dump in $work" >&2
  exit 1
fi
ir=$(sed -n 's/^\(summary\|totals\): \([0-9]*\).*/\2/p' "$dump" | head -n1)
rts=$((clients * rounds))

# 2. Syscalls (no valgrind: its own syscalls would count).
start_server
load "$warm" >/dev/null
tids=$(ls "/proc/$server_pid/task" | paste -sd, -)
strace -f -c -o "$work/strace" -p "$tids" 2>/dev/null &
strace_pid=$!
sleep 0.5
load "$rounds" >/dev/null
kill -INT "$strace_pid"
wait "$strace_pid" || true
stop_server
calls=$(awk '$NF == "total" { print $(NF-2) }' "$work/strace")

awk -v ir="$ir" -v rts="$rts" -v calls="${calls:-0}" -v ex="$executor" 'BEGIN {
  printf "echo_cost %s: %d round trips, %.0f Ir/rt (callgrind, user space), %.2f syscalls/rt\n",
         ex, rts, ir / rts, calls / rts
}'
