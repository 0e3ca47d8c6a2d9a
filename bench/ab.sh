#!/usr/bin/env bash
# Compares gateway variants on a shared, noisy machine: for each round and each variant,
# starts the gateway in front of the same everything-server, makes a fixed number of
# tools/call requests with mcpload, and prints the gateway's CPU time per call (user+sys
# from /proc/PID/stat), its user share, its RSS, and mcpload's calls/s and p50. Variants
# alternate round by round, so compare medians over rounds, not single lines.
#
#   bash bench/ab.sh ROUNDS SESSIONS CALLS VARIANT...
#
# A variant is "direct" (the server without a gateway) or a command that takes
# "serve --config FILE", e.g. a gateway binary, a wrapper script that adds --std-http, or
# the floor of any proxy: "bench/out/relay -mode tcp" (a byte relay) or
# "bench/out/relay -mode http" (httputil.ReverseProxy), built from bench/relay.
# Example: bash bench/ab.sh 5 64 8000 direct ./old/portcullis bench/out/portcullis
#
# Environment: PORTCULLIS_E2E (default .e2e), BENCH_SERVER_PORT (3923),
# BENCH_GATEWAY_PORT (8961), BENCH_TOOL (test_simple_text), BENCH_ARGS ({}),
# BENCH_CHAIN (default, or limits: the other default guards off); the audit trail is off.
set -euo pipefail

(($# >= 4)) || { echo "usage: bash bench/ab.sh ROUNDS SESSIONS CALLS VARIANT..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=$1 sessions=$2 calls=$3
shift 3
for n in "$rounds" "$sessions" "$calls"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "ab: '$n' is not a positive number" >&2; exit 2; }
done
e2e=${PORTCULLIS_E2E:-$root/.e2e}
server_port=${BENCH_SERVER_PORT:-3923}
gw_port=${BENCH_GATEWAY_PORT:-8961}
tool=${BENCH_TOOL:-test_simple_text}
args=${BENCH_ARGS:-'{}'}
out=$root/bench/out
mkdir -p "$out"
# The gateway's store (pins, keys) lives under bench/out, not in the user's state directory:
# a bench run must not change, or depend on, another portcullis's database.
export XDG_STATE_HOME="$out/state"
mkdir -p "$XDG_STATE_HOME"
go build -o "$out/mcpload" ./bench/mcpload
load=$out/mcpload

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "ab: nothing listens on 127.0.0.1:$1" >&2
  exit 1
}
field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | head -n 1 | cut -d: -f2; }

"$e2e/bin/everything-server" -http "127.0.0.1:$server_port" -stateless=false >"$out/ab-server.log" 2>&1 &
pids+=($!)
wait_port "$server_port"
cat >"$out/ab.yaml" <<EOF
listen: 127.0.0.1:$gw_port
auth: none
servers:
  - name: everything
    url: http://127.0.0.1:$server_port/mcp
EOF
# The audit trail is off here, as in run.sh (whose BENCH_AUDIT=1 measures it).
printf 'guards:\n  audit: off\n' >>"$out/ab.yaml"
if [ "${BENCH_CHAIN:-default}" = limits ]; then # the chain the issue's targets name
  for g in registry detect-args approval detect-results detect-listings; do printf '  %s: off\n' "$g" >>"$out/ab.yaml"; done
fi
tick=$(getconf CLK_TCK)
echo "| round | variant | sessions | calls/s | p50 µs | gateway CPU µs/call | of which user | RSS MiB |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|"
for ((r = 1; r <= rounds; r++)); do
  for v in "$@"; do
    if [ "$v" = direct ]; then
      res=$("$load" -url "http://127.0.0.1:$server_port/mcp" -tool "$tool" -args "$args" -sessions "$sessions" -calls "$calls" -json)
      echo "| $r | direct | $sessions | $(field calls_per_sec "$res") | $(field p50_us "$res") | | | |"
      continue
    fi
    read -r -a cmd <<<"$v" # a variant may carry flags: "bench/out/relay -mode http"
    "${cmd[@]}" serve --config "$out/ab.yaml" >"$out/ab-gateway.log" 2>&1 &
    gw=$!
    pids+=("$gw")
    wait_port "$gw_port"
    url=http://127.0.0.1:$gw_port/mcp
    gtool=$("$load" -url "$url" -list | grep -x ".*$tool" | head -n 1)
    "$load" -url "$url" -tool "$gtool" -args "$args" -sessions "$sessions" -calls 1000 -warmup 0s >/dev/null
    read -r -a s0 < <(cut -d' ' -f14,15 "/proc/$gw/stat")
    res=$("$load" -url "$url" -tool "$gtool" -args "$args" -sessions "$sessions" -calls "$calls" -warmup 0s -json)
    read -r -a s1 < <(cut -d' ' -f14,15 "/proc/$gw/stat")
    rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$gw/status")
    n=$(field calls "$res")
    all=$(((s1[0] + s1[1] - s0[0] - s0[1]) * 1000000 / tick / n))
    user=$(((s1[0] - s0[0]) * 1000000 / tick / n))
    echo "| $r | $v | $sessions | $(field calls_per_sec "$res") | $(field p50_us "$res") | $all | $user | $rss |"
    kill "$gw"
    wait "$gw" 2>/dev/null || true
  done
done
