#!/usr/bin/env bash
# Benchmark of issue 14's fleet queries (never run by CI): latency of /api/v1/fleet/energy and
# /api/v1/fleet/top on a fleet-level roll-up holding --fleet-size charge points (default 20,000)
# for 31 days of hours and days, while --ingest-cps charge points (default 200) send MeterValues
# through the real server, so the reads share the machine and Redis with a live fleet.
#
# The roll-up is seeded straight into a private redis-server (one EVAL per bucket writing every
# charge point's summary and the bucket's totals, exactly the layout fleet_merge.lua writes):
# 31 days of a 20,000-charge-point fleet through the ingest path would take days. Each answer is
# checked against the seeded totals before it is timed.
#
#   scripts/bench-fleet-queries.sh                      # build, seed (~1 min), 20 s of reads
#   scripts/bench-fleet-queries.sh --runs 3 --no-build  # medians of 3 runs
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1
fleet_size=20000
ingest_cps=200
read_secs=20
build=1
bin_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --fleet-size) fleet_size="$2"; shift 2 ;;
    --ingest-cps) ingest_cps="$2"; shift 2 ;;
    --read-secs) read_secs="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir="$2"; build=0; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--fleet-size N] [--ingest-cps N] [--read-secs S] [--no-build] [--bin-dir DIR]" >&2; exit 2 ;;
  esac
done

work="$(mktemp -d /tmp/ocpp-meter-fleetq.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$build" = 1 ]; then
  echo "building release binaries" >&2
  cargo build --release --bins -q
fi
bin="${bin_dir:-${CARGO_TARGET_DIR:-target}/release}"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rcli() { redis-cli -s "$work/redis.sock" "$@"; }

# Writes one fleet bucket: n charge points FQ000001.., each `samples|energy|max_power`, energy
# a deterministic function of (charge point, bucket) so the totals are known.
SEED_SCRIPT='
local n, hours, base = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local total, args = 0, {}
for i = 1, n do
  local e = 0
  for h = 0, hours - 1 do e = e + ((i * 7 + base + h) % 7000) + 0.5 end
  total = total + e
  args[#args + 1] = string.format("FQ%06d", i)
  args[#args + 1] = string.format("%d|%.17g|%d", 360 * hours, e, 7000 + (i % 4000))
  if #args >= 2000 then redis.call("HSET", KEYS[1], unpack(args)); args = {} end
end
if #args > 0 then redis.call("HSET", KEYS[1], unpack(args)) end
redis.call("HSET", KEYS[1], "/energy_wh", string.format("%.17g", total), "/charge_points", n)
return tostring(total)'

run_once() {
  rm -f "$work/redis.sock"
  redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$work" --logfile "$work/redis.log" &
  pids+=("$!")
  for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done

  local now_h day0 t0
  now_h=$(( $(date -u +%s) / 3600 * 3600 ))
  day0=$(( now_h / 86400 * 86400 ))
  echo "seeding $fleet_size charge points x 31 days of fleet buckets" >&2
  t0=$(date +%s)
  for h in $(seq 0 $((31 * 24))); do
    local start=$(( now_h - h * 3600 ))
    rcli eval "$SEED_SCRIPT" 1 "ocpp:{fleet}:agg:hour:$start" "$fleet_size" 1 "$((start / 3600))" >/dev/null
  done
  for d in $(seq 0 31); do
    local start=$(( day0 - d * 86400 ))
    rcli eval "$SEED_SCRIPT" 1 "ocpp:{fleet}:agg:day:$start" "$fleet_size" 24 "$((start / 3600))" >/dev/null
  done
  # Groups: a site of 50 charge points and a customer of 2,000.
  local site customer
  site=$(python3 -c "import json; print(json.dumps({'name':'Site','charge_points':['FQ%06d' % i for i in range(1, 51)]}))")
  customer=$(python3 -c "import json; print(json.dumps({'name':'Customer','charge_points':['FQ%06d' % i for i in range(1, 2001)]}))")
  rcli hset ocpp:groups site-50 "$site" customer-2000 "$customer" >/dev/null
  echo "seeded in $(( $(date +%s) - t0 )) s; Redis used_memory $(rcli info memory | tr -d '\r' | awk -F: '$1=="used_memory_human"{print $2}')" >&2

  local ws_port http_port http
  ws_port="$(free_port)"; http_port="$(free_port)"; http="http://127.0.0.1:$http_port"
  env RUST_LOG=warn OCPP_METER_WAL_DIR="$work/wal" \
    OCPP_METER_LIMITS_CONNECTS_PER_ADDRESS_PER_SEC=1000000 OCPP_METER_LIMITS_CONNECT_BURST=1000000 \
    "$bin/ocpp-meter" --config config.toml --ws-addr "127.0.0.1:$ws_port" \
    --http-addr "127.0.0.1:$http_port" --redis-url "redis+unix://$work/redis.sock" \
    >"$work/server.log" 2>&1 &
  local server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 300); do curl -fsS --max-time 1 "$http/health" >/dev/null 2>&1 && break; sleep 0.1; done

  local from30 to30 from24 to
  to=$(date -u -d "@$((now_h + 3600))" +%Y-%m-%dT%H:%M:%SZ)
  from30=$(date -u -d "@$((now_h + 3600 - 30 * 86400))" +%Y-%m-%dT%H:%M:%SZ)
  from24=$(date -u -d "@$((now_h + 3600 - 86400))" +%Y-%m-%dT%H:%M:%SZ)
  local urls=(
    "$http/api/v1/fleet/energy?period=hour&from=$from30&to=$to"
    "$http/api/v1/fleet/energy?period=hour&from=$from30&to=$to&group=site-50"
    "$http/api/v1/fleet/energy?period=day&from=$from30&to=$to"
    "$http/api/v1/fleet/top?metric=energy_wh&from=$from24&to=$to"
    "$http/api/v1/fleet/top?metric=energy_wh&from=$from30&to=$to&group=site-50"
    "$http/api/v1/fleet/top?metric=energy_wh&from=$from30&to=$to"
  )
  # The answers must be the seeded sums, or the timing means nothing.
  curl -fsS "${urls[0]}" | python3 -c "
import json, sys
body = json.load(sys.stdin)
b = body['buckets']
assert len(b) == 720, len(b)
n = $fleet_size
for bucket in b:
    assert bucket['charge_points'] == n, bucket
    assert bucket['energy_wh'] > 0, bucket
print('checked: 720 hourly buckets of', n, 'charge points', file=sys.stderr)"

  "$bin/ocpp-loadgen" --url "ws://127.0.0.1:$ws_port/ocpp/" --charge-points "$ingest_cps" \
    --id-prefix IN --samples-per-message 10 --duration-secs $((read_secs + 10)) \
    >"$work/ingest.json" 2>"$work/ingest.log" &
  local ingest_pid=$!
  pids+=("$ingest_pid")
  sleep 5
  local args=()
  for u in "${urls[@]}"; do args+=(--url "$u"); done
  "$bin/ocpp-readgen" --duration-secs "$read_secs" --pause-ms 50 "${args[@]}" >"$work/reads.json"
  wait "$ingest_pid" || true
  python3 - "$work/reads.json" "$work/ingest.json" <<'PY'
import json, sys
reads = json.load(open(sys.argv[1]))["reads"]
try:
    ingest = json.load(open(sys.argv[2]))
except Exception:
    ingest = {}
names = ["energy hour 30 d, fleet", "energy hour 30 d, group of 50", "energy day 30 d, fleet",
         "top energy 24 h, fleet", "top energy 30 d, group of 50", "top energy 30 d, fleet"]
for name, r in zip(names, reads):
    l = r["latency_ms"]
    print(f"{name:32} n={r['count']:5} errors={r['errors']} bytes={r['bytes']:7} "
          f"p50={l['p50']:.2f} p90={l['p90']:.2f} p99={l['p99']:.2f} max={l['max']:.2f} ms")
print("ingest beside the reads:", {k: v for k, v in ingest.items() if "per_sec" in k or k == "acked"})
PY
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rcli shutdown nosave >/dev/null 2>&1 || true
}

for r in $(seq 1 "$runs"); do
  echo "run $r of $runs (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  run_once
done
