#!/usr/bin/env bash
# Redfish GET /redfish/v1/Systems/1 throughput, latency and server CPU per request.
#
# Starts `virtbmc --simulate` (Redfish only, loopback), logs in for a session token, then drives wrk
# at 1 and 32 connections for DURATION seconds each against:
#   system    GET /redfish/v1/Systems/1 with X-Auth-Token (auth + backend snapshot + ETag)
#   root      GET /redfish/v1 unauthenticated (same server: framework cost without auth/backend)
#   bare      a bare node:http server answering the same Systems/1 JSON (floor for this machine)
# and prints req/s, p99 latency, the server process's CPU time per request (utime+stime from
# /proc/PID/stat before/after), and the system/baseline ratios. Measures; never fails on a number.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3}
CONNS=${CONNS:-"1 32"}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)" >&2; exit 1; }

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() {
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/redfish/v1" && return 0
    sleep 0.1
  done
  echo "server on port $1 did not come up" >&2; return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

PORT=$(free_port)
BMC_PASSWORD=password node --import tsx src/cmd/virtbmc.ts --simulate --address 127.0.0.1 --no-ipmi --redfish-port "$PORT" \
  --username admin --sim-power on --log-level silent &
AGENT=$!
PIDS+=("$AGENT")
wait_port "$PORT"

TOKEN=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
  -d '{"UserName":"admin","Password":"password"}' "http://127.0.0.1:$PORT/redfish/v1/SessionService/Sessions" |
  awk 'tolower($1)=="x-auth-token:" {print $2}' | tr -d '\r')
[ -n "$TOKEN" ] || { echo "login failed" >&2; exit 1; }
SYSTEM_JSON=$(curl -s -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$PORT/redfish/v1/Systems/1")

# The bare baseline: node:http answering the same JSON, no routing, no auth.
BARE_PORT=$(free_port)
SYSTEM_JSON="$SYSTEM_JSON" node -e '
  const body = process.env.SYSTEM_JSON;
  require("http").createServer((q, r) => { r.writeHead(200, {"content-type": "application/json; charset=utf-8", "odata-version": "4.0"}); r.end(body); })
    .listen(Number(process.argv[1]), "127.0.0.1");' "$BARE_PORT" &
BARE=$!
PIDS+=("$BARE")
for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$BARE_PORT/" && break; sleep 0.1; done

# run NAME PID URL CONNS [HEADER] → prints one line; sets RPS, CPU_US
run() {
  local name=$1 pid=$2 url=$3 c=$4 hdr=${5:-}
  local before after out reqs p99
  # warm-up (JIT, keep-alive sockets)
  wrk -t1 -c"$c" -d1s ${hdr:+-H "$hdr"} "$url" >/dev/null
  before=$(cpu_ticks "$pid")
  out=$(wrk -t"$([ "$c" -gt 1 ] && echo 2 || echo 1)" -c"$c" -d"${DURATION}s" --latency ${hdr:+-H "$hdr"} "$url")
  after=$(cpu_ticks "$pid")
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  RPS=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local non2xx
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  CPU_US=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$reqs" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
  printf '%-8s c=%-3s %10s req/s  p99 %-9s cpu/req %7s us%s\n' "$name" "$c" "$RPS" "$p99" "$CPU_US" "${non2xx:+  NON-2XX: $non2xx}"
}

echo "GET /redfish/v1/Systems/1 (session token), ${DURATION}s per run, $(nproc) CPUs"
for c in $CONNS; do
  run system "$AGENT" "http://127.0.0.1:$PORT/redfish/v1/Systems/1" "$c" "X-Auth-Token: $TOKEN"
  S_RPS=$RPS S_CPU=$CPU_US
  run root "$AGENT" "http://127.0.0.1:$PORT/redfish/v1" "$c"
  R_RPS=$RPS R_CPU=$CPU_US
  run bare "$BARE" "http://127.0.0.1:$BARE_PORT/" "$c"
  B_RPS=$RPS B_CPU=$CPU_US
  awk -v s="$S_RPS" -v r="$R_RPS" -v b="$B_RPS" -v sc="$S_CPU" -v rc="$R_CPU" -v bc="$B_CPU" -v c="$c" 'BEGIN {
    printf "ratio    c=%-3s system/root %.2fx req/s, %.2fx cpu/req; system/bare %.2fx req/s, %.2fx cpu/req\n",
      c, (r > 0 ? s / r : 0), (rc > 0 ? sc / rc : 0), (b > 0 ? s / b : 0), (bc > 0 ? sc / bc : 0) }'
done
