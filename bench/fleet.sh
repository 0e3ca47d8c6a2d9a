#!/usr/bin/env bash
# Measures, in one run, the everything-server through one gateway and through two replicas
# of the gateway behind a round-robin load balancer (bench/lb, no session affinity), the
# replicas sharing one throwaway PostgreSQL (test/pg.sh) with fleet session forwarding.
# Prints calls/s and latency per setup and session count (mcpload's JSON lines in bench/out/fleet-*.json).
#
#   bash test/pg.sh bash bench/fleet.sh          # BENCH_DURATION (10s), BENCH_SESSIONS ("16 64")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=$root/bench/out
e2e=${PORTCULLIS_E2E:-$root/.e2e}
duration=${BENCH_DURATION:-10s}
sessions_list=${BENCH_SESSIONS:-16 64}
[ -n "${PORTCULLIS_TEST_POSTGRES:-}" ] || { echo "fleet.sh: run it under test/pg.sh (needs PORTCULLIS_TEST_POSTGRES)" >&2; exit 1; }
mkdir -p "$out"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
go build -o "$out/mcpload" ./bench/mcpload
go build -o "$out/lb" ./bench/lb
go build -o "$out/portcullis" ./cmd/portcullis
wait_http() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "fleet.sh: $1 did not answer" >&2; exit 1; }

"$e2e/bin/everything-server" -http 127.0.0.1:3913 -stateless=false >"$out/fleet-server.log" 2>&1 & pids+=($!)
sleep 0.5
key=$(head -c 32 /dev/urandom | base64)
for port in 8951 8952 8953; do
  cat >"$out/fleet-$port.yaml" <<YAML
listen: 127.0.0.1:$port
auth: none
store: {driver: postgres, dsn: "$PORTCULLIS_TEST_POSTGRES"}
fleet: {advertise: "http://127.0.0.1:$port", key: "$key"}
servers: [{name: everything, url: "http://127.0.0.1:3913/mcp"}]
guards: {limits: {call_timeout: 60s}}
log: {level: warn}
YAML
  "$out/portcullis" serve --config "$out/fleet-$port.yaml" >"$out/fleet-$port.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$port/healthz"
done
"$out/lb" -listen 127.0.0.1:8954 -backends http://127.0.0.1:8952,http://127.0.0.1:8953 >"$out/fleet-lb.log" 2>&1 & pids+=($!)
sleep 0.3
printf '| sessions | one gateway calls/s | two replicas behind the balancer calls/s | ratio %% | one p50/p99 µs | two p50/p99 µs |\n|---:|---:|---:|---:|---:|---:|\n'
for n in $sessions_list; do
  "$out/mcpload" -url http://127.0.0.1:8951/mcp -tool test_simple_text -args '{}' -sessions "$n" -duration "$duration" -json >"$out/fleet-one-$n.json"
  "$out/mcpload" -url http://127.0.0.1:8954/mcp -tool test_simple_text -args '{}' -sessions "$n" -duration "$duration" -json >"$out/fleet-two-$n.json"
  python3 - "$n" "$out/fleet-one-$n.json" "$out/fleet-two-$n.json" <<'PY'
import json, sys
n, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
def g(d, *ks):
    for k in ks:
        if k in d: return d[k]
    return float('nan')
ra, rb = g(a, 'calls_per_sec'), g(b, 'calls_per_sec')
print(f"| {n} | {ra:.1f} | {rb:.1f} | {100*rb/ra:.1f} | {g(a,'p50_us'):.0f} / {g(a,'p99_us'):.0f} | {g(b,'p50_us'):.0f} / {g(b,'p99_us'):.0f} |")
PY
done
