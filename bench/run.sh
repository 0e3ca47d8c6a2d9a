#!/usr/bin/env bash
# Measures the gateway's overhead in one run: mcpload against the Go SDK's
# conformance server ("everything-server") directly, and through Portcullis in
# front of the same server, for several session counts, alternating. Prints a
# markdown table and writes it to bench/out/results.md. See bench/README.md.
#
# Environment (all optional):
#   BENCH_DURATION       measured time per run, Go duration in ms, s or m (default 10s)
#   BENCH_WARMUP         unmeasured warmup per run (default 1s)
#   BENCH_SESSIONS       session counts to measure (default "1 16 64")
#   BENCH_PPROF=1        start the gateway with --pprof and profile its largest run
#   BENCH_GATEWAY=0      measure the direct connection only
#   BENCH_AUTH=1         the gateway requires an API key and evaluates an authz policy of 100 rules
#   BENCH_CHAIN=limits   the chain the issue's targets name: limits only, the other default
#                        guards off (default: the default chain, detectors and pins included).
#                        Either way the audit trail, on by default, is off here: BENCH_AUDIT=1
#                        measures it on a second gateway.
#   BENCH_AUDIT=1        also run a second gateway, the same plus the audit trail in SQLite
#                        (guards.audit with the store as its sink), measured in the same run
#   BENCH_AUDIT_PORT     its loopback port (default 8934)
#   BENCH_AUDIT_PPROF_PORT  with BENCH_PPROF=1 and BENCH_AUDIT=1, the audit gateway's pprof port
#                        (default 8935); its largest run is profiled too (bench/out/audit-cpu.prof)
#   BENCH_GATEWAY_BIN    use this gateway binary instead of building ./cmd/portcullis
#   BENCH_GATEWAY_FLAGS  extra flags for portcullis serve, e.g. --std-http (net/http for every request)
#   BENCH_TOOL           tool to call (default: echo if the server has it, else test_simple_text)
#   BENCH_ARGS           its arguments, a JSON object (default {"message":"hello"} for echo, else {})
#   BENCH_GATEWAY_TOOL   the tool's name through the gateway (default: found in the gateway's tools/list)
#   BENCH_SERVER_PORT, BENCH_GATEWAY_PORT, BENCH_PPROF_PORT   loopback ports (3903, 8931, 8932)
#   PORTCULLIS_E2E       where test/e2e/deps.sh installed the e2e dependencies (default .e2e)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=$root/bench/out
e2e=${PORTCULLIS_E2E:-$root/.e2e}
duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-1s}
sessions_list=${BENCH_SESSIONS:-1 16 64}
server_port=${BENCH_SERVER_PORT:-3903}
gw_port=${BENCH_GATEWAY_PORT:-8931}
pprof_port=${BENCH_PPROF_PORT:-8932}
want_pprof=${BENCH_PPROF:-0}
want_gateway=${BENCH_GATEWAY:-1}
want_audit=${BENCH_AUDIT:-0}
audit_port=${BENCH_AUDIT_PORT:-8934}
audit_pprof_port=${BENCH_AUDIT_PPROF_PORT:-8935}

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# Go duration (Nms, Ns or Nm) to milliseconds; nothing else is accepted.
to_ms() {
  case $1 in
    *ms) v=${1%ms}; m=1 ;;
    *s) v=${1%s}; m=1000 ;;
    *m) v=${1%m}; m=60000 ;;
    *) v=x ;;
  esac
  [[ $v =~ ^[0-9]+$ ]] || die "bad duration '$1' (want e.g. 500ms, 10s, 1m)"
  echo $((10#$v * m))
}
duration_ms=$(to_ms "$duration")
warmup_ms=$(to_ms "$warmup")
((duration_ms > 0)) || die "BENCH_DURATION must be positive"
for p in "$server_port" "$gw_port" "$pprof_port" "$audit_port" "$audit_pprof_port"; do
  if ! [[ $p =~ ^[0-9]+$ ]] || ((p < 1 || p > 65535)); then die "bad port '$p'"; fi
done
max_sessions=0
for n in $sessions_list; do
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 4096)); then die "bad session count '$n' in BENCH_SESSIONS"; fi
  if ((n > max_sessions)); then max_sessions=$n; fi
done
((max_sessions > 0)) || die "BENCH_SESSIONS is empty"

# Everything started here is killed on exit, by PID. A process that was waited
# for is forgotten, so that a reused PID is never killed.
pids=()
forget() {
  local p keep=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
cleanup() {
  local p alive i
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID LOG: waits up to 10 s for PID to listen on PORT.
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$3" >&2; die "process $2 exited before listening on 127.0.0.1:$1 (log: $3)"; }
    sleep 0.1
  done
  tail -n 20 "$3" >&2
  die "nothing listens on 127.0.0.1:$1 after 10 s (log: $3)"
}

# list_tools URL FILE: the server's tool names, retried for up to 10 s.
list_tools() {
  local i
  for ((i = 0; i < 50; i++)); do
    "$out/mcpload" -url "$1" "${@:3}" -list >"$2" 2>"$2.err" && return 0
    sleep 0.2
  done
  cat "$2.err" >&2
  die "tools/list at $1 failed"
}

# CPU time (utime+stime) of a process in clock ticks.
proc_ticks() {
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) } # the command name may contain spaces and parentheses
  read -r -a f <<<"$s"
  echo $((f[11] + f[12])) # fields 14 and 15 of stat; f[0] is field 3
}

# jnum FILE KEY: a number from mcpload's one-line JSON. (Quotes inside its
# first_error string are escaped, so they cannot match "KEY":.)
jnum() { sed -n 's/.*"'"$2"'":\(-\{0,1\}[0-9.eE+-]*\).*/\1/p' "$1"; }
jstr() { sed -n 's/.*"'"$2"'":"\(.*\)"[,}].*/\1/p' "$1"; }

mkdir -p "$out"
# The gateway's store (pins, keys) lives under bench/out, not in the user's state directory:
# a bench run must not change, or depend on, another portcullis's database.
export XDG_STATE_HOME="$out/state"
mkdir -p "$XDG_STATE_HOME"

# --- dependencies and builds -------------------------------------------------
if [ ! -x "$e2e/bin/everything-server" ]; then
  note "installing the e2e dependencies (test/e2e/deps.sh)"
  bash "$root/test/e2e/deps.sh"
fi
[ -x "$e2e/bin/everything-server" ] || die "$e2e/bin/everything-server missing after test/e2e/deps.sh"

go build -o "$out/mcpload" ./bench/mcpload
gw_bin=""
if [ "$want_gateway" != 0 ]; then
  if [ -n "${BENCH_GATEWAY_BIN:-}" ]; then
    [ -x "$BENCH_GATEWAY_BIN" ] || die "BENCH_GATEWAY_BIN=$BENCH_GATEWAY_BIN is not executable"
    gw_bin=$BENCH_GATEWAY_BIN
  elif [ -d "$root/cmd/portcullis" ]; then
    go build -o "$out/portcullis" ./cmd/portcullis || die "building ./cmd/portcullis failed (BENCH_GATEWAY=0 measures the direct connection only)"
    gw_bin=$out/portcullis
  else
    note "./cmd/portcullis does not exist yet: measuring the direct connection only"
  fi
fi

for p in "$server_port" ${gw_bin:+"$gw_port"} $([ -n "$gw_bin" ] && [ "$want_audit" = 1 ] && echo "$audit_port"); do
  ! port_open "$p" || die "127.0.0.1:$p is already in use; stop what listens there or set BENCH_SERVER_PORT / BENCH_GATEWAY_PORT"
done
if [ -n "$gw_bin" ] && [ "$want_pprof" = 1 ]; then
  ! port_open "$pprof_port" || die "127.0.0.1:$pprof_port is already in use; set BENCH_PPROF_PORT"
  if [ "$want_audit" = 1 ]; then
    ! port_open "$audit_pprof_port" || die "127.0.0.1:$audit_pprof_port is already in use; set BENCH_AUDIT_PPROF_PORT"
  fi
fi

# --- upstream server -----------------------------------------------------------
direct_url=http://127.0.0.1:$server_port/mcp
"$e2e/bin/everything-server" -http "127.0.0.1:$server_port" -stateless=false >"$out/everything-server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_port "$server_port" "$server_pid" "$out/everything-server.log"
list_tools "$direct_url" "$out/tools-direct.txt"

tool=${BENCH_TOOL:-}
if [ -z "$tool" ]; then
  if grep -qxF echo "$out/tools-direct.txt"; then
    tool="echo"
  else
    tool=test_simple_text
    note "the server has no 'echo' tool; calling '$tool' instead (set BENCH_TOOL to choose)"
  fi
fi
grep -qxF "$tool" "$out/tools-direct.txt" || die "the server has no tool '$tool' (its tools: $out/tools-direct.txt)"
if [ "$tool" = echo ]; then default_args='{"message":"hello"}'; else default_args='{}'; fi
args=${BENCH_ARGS:-$default_args}

# --- gateway -------------------------------------------------------------------
gw_url=http://127.0.0.1:$gw_port/mcp
gw_pid=""
gw_tool=""
gw_hdr=()
if [ -n "$gw_bin" ]; then
  if [ "${BENCH_AUTH:-0}" = 1 ]; then
    # Authentication (an API key) and an authz policy of 100 rules: 99 that do not match
    # this principal's call, then the one that allows it.
    rm -f "$out/bench.db"*
    {
      echo "listen: 127.0.0.1:$gw_port"
      echo "auth: {api_keys: true}"
      echo "store: {driver: sqlite, path: $out/bench.db}"
      echo "servers:"
      echo "  - name: everything"
      echo "    url: $direct_url"
      echo "guards:"
      echo "  authz:"
      echo "    rules:"
      for i in $(seq 1 99); do
        printf '      - {name: rule-%d, effect: allow, tools: ["tool_%d"], when: %s}\n' "$i" "$i" "'\"group-$i\" in principal.groups && size(args) < 10'"
      done
      printf '      - {name: bench, effect: allow, when: %s}\n' "'\"bench\" in principal.groups'"
    } >"$out/portcullis.yaml"
    key=$("$gw_bin" keys create --config "$out/portcullis.yaml" --name bench --groups bench 2>&1 | grep -o 'pc_[A-Za-z0-9_-]*' | head -n 1)
    [ -n "$key" ] || die "could not create an API key for BENCH_AUTH=1"
    gw_hdr=(-header "Authorization: Bearer $key")
  else
    cat >"$out/portcullis.yaml" <<EOF
listen: 127.0.0.1:$gw_port
auth: none
servers:
  - name: everything
    url: $direct_url
EOF
  fi
  case "${BENCH_CHAIN:-default}" in
    default) ;;
    limits)
      grep -q '^guards:' "$out/portcullis.yaml" || echo "guards:" >>"$out/portcullis.yaml"
      for g in registry detect-args approval detect-results detect-listings; do
        echo "  $g: off" >>"$out/portcullis.yaml"
      done
      ;;
    *) die "BENCH_CHAIN is default or limits, not '$BENCH_CHAIN'" ;;
  esac
  # The audit trail is on by default; it is measured on its own gateway (BENCH_AUDIT=1),
  # so that this one stays comparable with the figures of bench/RESULTS.md.
  grep -q '^guards:' "$out/portcullis.yaml" || echo "guards:" >>"$out/portcullis.yaml"
  echo "  audit: off" >>"$out/portcullis.yaml"
  gw_args=(serve --config "$out/portcullis.yaml")
  [ "$want_pprof" = 1 ] && gw_args+=(--pprof "127.0.0.1:$pprof_port")
  # shellcheck disable=SC2206 # flags are words
  if [ -n "${BENCH_GATEWAY_FLAGS:-}" ]; then gw_args+=(${BENCH_GATEWAY_FLAGS}); fi
  "$gw_bin" "${gw_args[@]}" >"$out/portcullis.log" 2>&1 &
  gw_pid=$!
  pids+=("$gw_pid")
  wait_port "$gw_port" "$gw_pid" "$out/portcullis.log"
  list_tools "$gw_url" "$out/tools-gateway.txt" "${gw_hdr[@]}"
  if [ "$want_audit" = 1 ]; then
    # The same configuration on another port, plus the audit trail in the SQLite store (the
    # audit guard's default sink): every call is two events, each synced before it goes on.
    rm -f "$out/audit.db"*
    {
      sed -e "s/^listen: .*/listen: 127.0.0.1:$audit_port/" -e '/^store:/d' -e '/^guards:/,$d' "$out/portcullis.yaml"
      if grep -q '^store:' "$out/portcullis.yaml"; then
        grep '^store:' "$out/portcullis.yaml" # the API keys live there (BENCH_AUTH=1)
      else
        echo "store: {driver: sqlite, path: $out/audit.db}"
      fi
      echo "guards:"
      echo "  audit: {store: {chain: bench}}"
      sed -n '/^guards:/,$p' "$out/portcullis.yaml" | sed -e 1d -e '/^  audit: off$/d'
    } >"$out/portcullis-audit.yaml"
    audit_args=(serve --config "$out/portcullis-audit.yaml")
    [ "$want_pprof" = 1 ] && audit_args+=(--pprof "127.0.0.1:$audit_pprof_port")
    # shellcheck disable=SC2206 # flags are words
    if [ -n "${BENCH_GATEWAY_FLAGS:-}" ]; then audit_args+=(${BENCH_GATEWAY_FLAGS}); fi
    "$gw_bin" "${audit_args[@]}" >"$out/portcullis-audit.log" 2>&1 &
    audit_pid=$!
    pids+=("$audit_pid")
    wait_port "$audit_port" "$audit_pid" "$out/portcullis-audit.log"
  fi
  gw_tool=${BENCH_GATEWAY_TOOL:-}
  if [ -z "$gw_tool" ]; then
    if grep -qxF "$tool" "$out/tools-gateway.txt"; then
      gw_tool=$tool
    else # a gateway may prefix tool names with the server's name
      gw_tool=$(awk -v t="$tool" 'index($0, "everything") == 1 && length($0) > length(t) + 10 && substr($0, length($0) - length(t) + 1) == t { print; exit }' "$out/tools-gateway.txt")
    fi
  fi
  if [ -z "$gw_tool" ] || ! grep -qxF "$gw_tool" "$out/tools-gateway.txt"; then
    die "cannot find tool '$tool' in the gateway's tools/list ($out/tools-gateway.txt); set BENCH_GATEWAY_TOOL"
  fi
fi

# --- runs --------------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# load NAME URL TOOL SESSIONS: one mcpload run, its JSON in $out/NAME.json. It
# runs in the background so that a signal to this script is handled at once.
load() {
  local lp rc=0
  note "$1: $4 sessions, $duration (+$warmup warmup)"
  "$out/mcpload" -url "$2" -tool "$3" -args "$args" -sessions "$4" "${@:5}" \
    -duration "$duration" -warmup "$warmup" -json >"$out/$1.json" &
  lp=$!
  pids+=("$lp")
  wait "$lp" || rc=$?
  forget "$lp"
  ((rc == 0)) || die "mcpload failed for $1"
}

# profile PORT FILE: fetches a CPU profile of the run about to start into FILE, in the
# background (its PID in prof_pid).
profile() {
  prof_pid=""
  if ! command -v curl >/dev/null; then
    note "curl not found: no CPU profile"
    return
  fi
  rm -f "$2"
  (
    sleep "$((warmup_ms / 1000)).$(printf '%03d' $((warmup_ms % 1000)))"
    exec curl -sS --max-time $((prof_secs + 30)) -o "$2" \
      "http://127.0.0.1:$1/debug/pprof/profile?seconds=$prof_secs"
  ) &
  prof_pid=$!
  pids+=("$prof_pid")
}

prof_secs=$(((duration_ms / 1000) < 10 ? duration_ms / 1000 : 10))
((prof_secs >= 1)) || prof_secs=1
rss_kb="" hwm_kb=""
declare -A gw_cpu audit_cpu
rm -f "$out"/direct-*.json "$out"/gateway-*.json "$out"/audit-*.json "$out/results.md"
for n in $sessions_list; do
  load "direct-$n" "$direct_url" "$tool" "$n"
  [ -n "$gw_bin" ] || continue

  prof_pid=""
  if [ "$want_pprof" = 1 ] && ((n == max_sessions)); then profile "$pprof_port" "$out/cpu.prof"; fi
  t0=$(proc_ticks "$gw_pid")
  load "gateway-$n" "$gw_url" "$gw_tool" "$n" "${gw_hdr[@]}"
  kill -0 "$gw_pid" 2>/dev/null || die "the gateway exited during the run (log: $out/portcullis.log)"
  t1=$(proc_ticks "$gw_pid")
  total=$(jnum "$out/gateway-$n.json" total_calls)
  gw_cpu[$n]=$(awk -v d=$((t1 - t0)) -v hz="$clk_tck" -v c="$total" 'BEGIN { if (c > 0) printf "%.1f", d * 1e6 / hz / c; else print "n/a" }')
  if ((n == max_sessions)); then
    rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$gw_pid/status")
    hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$gw_pid/status")
  fi
  if [ -n "$prof_pid" ]; then
    wait "$prof_pid" || note "fetching the CPU profile failed"
    forget "$prof_pid"
  fi
  if [ "$want_audit" = 1 ]; then
    prof_pid=""
    if [ "$want_pprof" = 1 ] && ((n == max_sessions)); then profile "$audit_pprof_port" "$out/audit-cpu.prof"; fi
    t0=$(proc_ticks "$audit_pid")
    load "audit-$n" "http://127.0.0.1:$audit_port/mcp" "$gw_tool" "$n" "${gw_hdr[@]}"
    kill -0 "$audit_pid" 2>/dev/null || die "the audit gateway exited during the run (log: $out/portcullis-audit.log)"
    t1=$(proc_ticks "$audit_pid")
    total=$(jnum "$out/audit-$n.json" total_calls)
    audit_cpu[$n]=$(awk -v d=$((t1 - t0)) -v hz="$clk_tck" -v c="$total" 'BEGIN { if (c > 0) printf "%.1f", d * 1e6 / hz / c; else print "n/a" }')
    if [ -n "$prof_pid" ]; then
      wait "$prof_pid" || note "fetching the audit gateway's CPU profile failed"
      forget "$prof_pid"
    fi
  fi
done

# --- report --------------------------------------------------------------------------
mcpload_procs=1
[ -n "${GOMAXPROCS:-}" ] && mcpload_procs=$GOMAXPROCS
{
  echo "## Portcullis overhead: direct vs. through the gateway"
  echo
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (dirty)'), $(go env GOVERSION)"
  echo "- $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)), load average before: $load_before"
  echo "- tool \`$tool\` ${gw_tool:+(\`$gw_tool\` through the gateway) }with \`$args\`; $duration per run after $warmup warmup; mcpload GOMAXPROCS=$mcpload_procs"
  echo "- upstream: everything-server (Go SDK conformance server), stateful, 127.0.0.1:$server_port"
  if [ -n "$gw_bin" ]; then echo "- gateway chain: $(sed -n 's/.* guards="\{0,1\}\(\[[^]]*\]\).*/\1/p' "$out/portcullis.log" | head -n 1) (BENCH_CHAIN=${BENCH_CHAIN:-default})"; fi
  echo
  echo "| sessions | direct calls/s | gateway calls/s | ratio % | direct p50/p99 µs | gateway p50/p99 µs | added p50 µs | gateway CPU µs/call |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for n in $sessions_list; do
    d=$out/direct-$n.json
    d_rps=$(jnum "$d" calls_per_sec) d50=$(jnum "$d" p50_us) d99=$(jnum "$d" p99_us)
    if [ -n "$gw_bin" ]; then
      g=$out/gateway-$n.json
      g_rps=$(jnum "$g" calls_per_sec) g50=$(jnum "$g" p50_us) g99=$(jnum "$g" p99_us)
      ratio=$(awk -v g="$g_rps" -v d="$d_rps" 'BEGIN { if (d > 0) printf "%.1f", 100 * g / d; else print "n/a" }')
      added=$(awk -v g="$g50" -v d="$d50" 'BEGIN { printf "%.1f", g - d }')
      echo "| $n | $d_rps | $g_rps | $ratio | $d50 / $d99 | $g50 / $g99 | $added | ${gw_cpu[$n]} |"
    else
      echo "| $n | $d_rps | – | – | $d50 / $d99 | – | – | – |"
    fi
  done
  echo
  if [ -n "$gw_bin" ]; then
    awk -v r="$rss_kb" -v h="$hwm_kb" -v n="$max_sessions" 'BEGIN { printf "Gateway RSS after the %d-session run: %.1f MiB (peak %.1f MiB).\n", n, r / 1024, h / 1024 }'
  else
    echo "Gateway not measured (no ./cmd/portcullis yet, or BENCH_GATEWAY=0)."
  fi
  if [ "$want_audit" = 1 ] && [ -n "$gw_bin" ]; then
    echo
    echo "### Audit trail in SQLite (BENCH_AUDIT=1): the same gateway with and without guards.audit, same run"
    echo
    echo "| sessions | gateway calls/s | gateway+audit calls/s | audit/gateway % | gateway p50/p99 µs | gateway+audit p50/p99 µs | gateway CPU µs/call | gateway+audit CPU µs/call |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in $sessions_list; do
      g=$out/gateway-$n.json a=$out/audit-$n.json
      g_rps=$(jnum "$g" calls_per_sec) a_rps=$(jnum "$a" calls_per_sec)
      ratio=$(awk -v a="$a_rps" -v g="$g_rps" 'BEGIN { if (g > 0) printf "%.1f", 100 * a / g; else print "n/a" }')
      echo "| $n | $g_rps | $a_rps | $ratio | $(jnum "$g" p50_us) / $(jnum "$g" p99_us) | $(jnum "$a" p50_us) / $(jnum "$a" p99_us) | ${gw_cpu[$n]} | ${audit_cpu[$n]} |"
    done
    echo
    echo "Audit trail after the runs: $("$gw_bin" audit verify --config "$out/portcullis-audit.yaml" 2>&1 | head -n 1)"
  fi
  errs=""
  for n in $sessions_list; do for f in "$out/direct-$n.json" "$out/gateway-$n.json" "$out/audit-$n.json"; do
    [ -f "$f" ] || continue
    e=$(jnum "$f" errors) w=$(jnum "$f" warmup_errors)
    if [ "${e:-0}" != 0 ] || [ "${w:-0}" != 0 ]; then
      errs+="- $(basename "$f" .json): $e errors ($w during warmup), first: $(jstr "$f" first_error)"$'\n'
    fi
  done; done
  if [ -n "$errs" ]; then
    echo
    echo "**Errors** (those calls are excluded from calls/s and latency):"
    echo
    printf '%s' "$errs"
  fi
} >"$out/results.md"
echo
cat "$out/results.md"

if [ "$want_pprof" = 1 ] && [ -n "$gw_bin" ]; then
  if [ -s "$out/cpu.prof" ]; then
    echo
    echo "Gateway CPU profile ($prof_secs s of the $max_sessions-session run): $out/cpu.prof"
    go tool pprof -top -nodecount=25 "$gw_bin" "$out/cpu.prof" 2>/dev/null | tee "$out/cpu-top.txt"
  else
    note "no CPU profile was written ($out/cpu.prof)"
  fi
  if [ "$want_audit" = 1 ] && [ -s "$out/audit-cpu.prof" ]; then
    echo
    echo "Audit gateway CPU profile ($prof_secs s of the $max_sessions-session run): $out/audit-cpu.prof"
    go tool pprof -top -nodecount=25 "$gw_bin" "$out/audit-cpu.prof" 2>/dev/null | tee "$out/audit-cpu-top.txt"
  fi
fi
