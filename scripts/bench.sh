#!/usr/bin/env bash
# Ingest benchmark of issue 5 (never run by CI): a private redis-server on a unix socket, the
# release ocpp-meter with aggregation and alerting on, and ocpp-loadgen in the scenario
# "200 charge points, closed loop, 10 sampled values per MeterValues"; then the same generator
# against ocpp-null-server (the do-nothing ceiling). Prints one table row per run and the
# medians. Bounded: every run lasts --secs plus at most ~45 s of draining.
#
#   scripts/bench.sh                      # 1 run of 10 s
#   scripts/bench.sh --runs 3 --secs 20   # medians of 3 runs and the spread
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1
secs=10
cps=200
spm=10
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --secs) secs="$2"; shift 2 ;;
    --charge-points) cps="$2"; shift 2 ;;
    --samples-per-message) spm="$2"; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--secs S] [--charge-points N] [--samples-per-message N]" >&2; exit 2 ;;
  esac
done

work="$(mktemp -d /tmp/ocpp-meter-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "building release binaries" >&2
cargo build --release --bins -q

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rcli() { redis-cli -s "$work/redis.sock" "$@"; }
# Every command Redis executed so far, INFO itself excluded.
redis_calls() {
  rcli info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ && $1 != "cmdstat_info" {n += $3} END {print n+0}'
}
redis_mem() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}'; }
# utime + stime of a process in seconds.
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
metric() { curl -fsS --max-time 5 "$http/metrics" | awk -v m="$1" '$1 ~ "(^|_)"m"(_total)?$" {print $2}' | head -n1; }

run_meter() {
  rm -f "$work/redis.sock"
  redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$work" --logfile "$work/redis.log" &
  local redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
  local ws_port http_port
  ws_port="$(free_port)"
  http_port="$(free_port)"
  http="http://127.0.0.1:$http_port"
  # Loopback binds: no admin token is generated. The boot metering calls are left on (the
  # generator answers them NotSupported once per charge point).
  RUST_LOG=warn target/release/ocpp-meter --config config.toml \
    --ws-addr "127.0.0.1:$ws_port" --http-addr "127.0.0.1:$http_port" \
    --redis-url "redis+unix://$work/redis.sock" >"$work/server.log" 2>&1 &
  local server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 300); do curl -fsS --max-time 1 "$http/health" >/dev/null 2>&1 && break; sleep 0.1; done
  rcli config resetstat >/dev/null
  local calls0 mem0
  calls0="$(redis_calls)"
  mem0="$(redis_mem)"
  target/release/ocpp-loadgen --url "ws://127.0.0.1:$ws_port/ocpp/" --charge-points "$cps" \
    --samples-per-message "$spm" --duration-secs "$secs" >"$work/meter.json" 2>"$work/loadgen.log"
  # Wait for the buffers to reach Redis (at most buffer.max_age_secs + margin).
  local ingested stored
  for _ in $(seq 1 40); do
    ingested="$(metric samples_ingested)"
    stored="$(metric samples_stored)"
    [ -n "$stored" ] && [ "$stored" = "$ingested" ] && break
    sleep 1
  done
  local cpu hwm
  cpu="$(cpu_secs "$server_pid")"
  hwm="$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status")"
  kill -TERM "$server_pid"
  wait "$server_pid" || echo "server exit status $?" >&2
  local calls1 mem1
  calls1="$(redis_calls)"
  mem1="$(redis_mem)"
  kill -TERM "$redis_pid"
  wait "$redis_pid" 2>/dev/null || true
  echo "$(cat "$work/meter.json") $ingested $stored $((calls1 - calls0)) $((mem1 - mem0)) $cpu $hwm"
}

run_null() {
  local port
  port="$(free_port)"
  target/release/ocpp-null-server --listen "127.0.0.1:$port" 2>/dev/null &
  local pid=$!
  pids+=("$pid")
  sleep 0.3
  target/release/ocpp-loadgen --url "ws://127.0.0.1:$port/ocpp/" --charge-points "$cps" \
    --samples-per-message "$spm" --duration-secs "$secs" 2>/dev/null
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
}

results="$work/results"
: >"$results"
for run in $(seq 1 "$runs"); do
  echo "run $run/$runs: ocpp-meter" >&2
  meter="$(run_meter)"
  echo "run $run/$runs: ocpp-null-server" >&2
  null="$(run_null)"
  echo "$meter $null" >>"$results"
done

python3 - "$results" <<'EOF'
import json, statistics, sys
rows = []
for line in open(sys.argv[1]):
    # meter JSON, 6 numbers, null JSON (JSON lines have no spaces).
    parts = line.split()
    m, null = json.loads(parts[0]), json.loads(parts[7])
    ingested, stored, calls, mem, cpu, hwm = (float(x or 0) for x in parts[1:7])
    rows.append({
        "samples/s acked": m["samples_per_sec"],
        "p99 ack ms": m["latency_ms"]["p99"],
        "null samples/s": null["samples_per_sec"],
        "ratio to null %": 100 * m["samples_per_sec"] / max(null["samples_per_sec"], 1),
        "redis cmds/sample": calls / max(stored, 1),
        "redis bytes/sample": mem / max(stored, 1),
        "acked": m["samples_acked"],
        "stored": stored,
        "lost": m["samples_acked"] - stored,
        "failures": m["failures"] + null["failures"],
        "server cpu s": cpu,
        "server peak RSS MiB": hwm / 1024,
    })
keys = list(rows[0])
print("| metric | " + " | ".join(f"run {i+1}" for i in range(len(rows))) + " | median | spread |")
print("| --- |" + " --- |" * (len(rows) + 2))
for k in keys:
    vals = [r[k] for r in rows]
    fmt = lambda v: f"{v:,.3f}" if abs(v) < 10 else (f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}")
    print(f"| {k} | " + " | ".join(fmt(v) for v in vals)
          + f" | {fmt(statistics.median(vals))} | {fmt(max(vals) - min(vals))} |")
EOF
