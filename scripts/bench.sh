#!/usr/bin/env bash
# Benchmarks of issue 5 (never run by CI). Every run starts a private redis-server on a unix
# socket and the release ocpp-meter with the shipped config.toml (aggregation, alerting,
# statistics and the boot metering profile on), then drives it with ocpp-loadgen (and
# ocpp-readgen). Bounded: every phase has a fixed length plus at most ~45 s of draining.
#
# Scenarios (--scenario, default ingest):
#   ingest  200 charge points, closed loop, 10 sampled values per MeterValues, --secs long; then
#           the same generator against ocpp-null-server (the do-nothing ceiling). Targets 1, 2, 3, 6.
#   fleet   --fleet-size charge points (default 19,000: this box's open-file limit is 20,000 per
#           process, see docs/performance.md) sending MeterValues every 10 s; ack p99 after the
#           connect phase (warm-up), then the fleet idles and the server's RSS per idle charge
#           point is taken. Targets 4 and 6.
#   reads   seeds one charge point with 24 h of readings 10 s apart (8,640 per series) and one
#           with 30 days of readings 10 min apart, through the real ingest path (backfilled
#           MeterValues); then, with the fleet running, measures p99 of the 24 h meter-values
#           read of one series and of the 30-day hourly aggregates read. Targets 5 and 6.
#   all     the three, in that order.
#   protocols
#           the ingest scenario twice on the same build, OCPP 1.6 then OCPP 2.0.1 (each against
#           ocpp-meter and against ocpp-null-server in the same protocol), and one table of the
#           two side by side: samples/s acked and stored, ratio to the null server, server CPU
#           us/sample, Redis commands and bytes per sample, lost. --protocol does not apply.
#   cluster the ingest and fleet scenarios on one Redis (standalone, for the side-by-side), then ingest and
#           fleet against two instances on a local six-node Redis Cluster (scripts/cluster-up.sh;
#           three masters, three replicas, redis.wait_replicas = $WAIT_REPLICAS, default 1),
#           each instance taking half the charge points; commands and memory per sample summed
#           over the masters. Targets 2, 3, 6 on the cluster.
#
# --protocol ocpp1.6|ocpp2.0.1 (default ocpp1.6): the OCPP version every generated charge point
# speaks in any scenario (2.0.1: TransactionEvent Updated events with the same sampled values as
# the 1.6 MeterValues, see src/bin/ocpp-loadgen/). Tables of a 2.0.1 run say so in their heading.
#
#   scripts/bench.sh                                   # 1 ingest run of 10 s (~1 min)
#   scripts/bench.sh --runs 3 --secs 10                # medians of 3 runs and the spread
#   scripts/bench.sh --scenario fleet --runs 3         # ~2.5 min per run
#   scripts/bench.sh --scenario all --runs 3
#   scripts/bench.sh --scenario ingest --protocol ocpp2.0.1   # the ingest scenario in OCPP 2.0.1
#   scripts/bench.sh --scenario protocols --runs 3 --secs 10  # 1.6 and 2.0.1 side by side
#   scripts/bench.sh --bin-dir /tmp/old-build        # binaries copied from another build (A/B)
#   scripts/bench.sh --bin-dir /tmp/old-build --config /tmp/old-config.toml
#
# The server logs at warn; BENCH_RUST_LOG replaces that filter and BENCH_KEEP_LOG=FILE keeps the
# server's log of the last start there, e.g. where the slow reads' time went:
#   BENCH_RUST_LOG=warn,ocpp_meter::api::read_timing=debug BENCH_KEEP_LOG=/tmp/reads.log \
#     scripts/bench.sh --scenario reads
#                    # a build from before a config key existed needs its own config.toml
#   OCPP_METER_WAL_ENABLED=false scripts/bench.sh      # environment reaches the server: the
#                    # same build without its write-ahead log
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1
secs=10
cps=200
spm=10
scenario=ingest
fleet_size=19000
fleet_secs=60
read_secs=20
build=1
bin_dir=""
config="config.toml"
protocol=ocpp1.6
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --secs) secs="$2"; shift 2 ;;
    --charge-points) cps="$2"; shift 2 ;;
    --samples-per-message) spm="$2"; shift 2 ;;
    --scenario) scenario="$2"; shift 2 ;;
    --fleet-size) fleet_size="$2"; shift 2 ;;
    --fleet-secs) fleet_secs="$2"; shift 2 ;;
    --read-secs) read_secs="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir="$2"; build=0; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --protocol) protocol="$2"; shift 2 ;;
    *) echo "usage: $0 [--scenario ingest|fleet|reads|all|cluster|protocols] [--protocol ocpp1.6|ocpp2.0.1] [--runs N] [--secs S] [--charge-points N]" \
         "[--samples-per-message N] [--fleet-size N] [--fleet-secs S] [--read-secs S] [--no-build] [--bin-dir DIR] [--config FILE]" >&2; exit 2 ;;
  esac
done
case "$scenario" in
  ingest|fleet|reads|all|cluster|protocols) ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
case "$protocol" in
  ocpp1.6|ocpp2.0.1) ;;
  *) echo "unknown protocol $protocol (ocpp1.6 or ocpp2.0.1)" >&2; exit 2 ;;
esac
# The generator's protocol flag, only for 2.0.1: a build from before the flag (--bin-dir) still
# runs the 1.6 scenarios.
lg_proto=()
set_protocol() {
  protocol="$1"
  lg_proto=()
  if [ "$protocol" != ocpp1.6 ]; then lg_proto=(--protocol "$protocol"); fi
}
set_protocol "$protocol"

work="$(mktemp -d /tmp/ocpp-meter-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ -n "${BENCH_KEEP_LOG:-}" ] && [ -f "$work/server.log" ]; then
    cp "$work/server.log" "$BENCH_KEEP_LOG"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$build" = 1 ]; then
  echo "building release binaries" >&2
  cargo build --release --bins -q
fi
bin="${bin_dir:-${CARGO_TARGET_DIR:-target}/release}"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

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
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
metric() { curl -fsS --max-time 5 "$http/metrics" | awk -v m="$1" '$1 ~ "(^|_)"m"(_total)?$" {print $2}' | head -n1; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# Starts redis-server and ocpp-meter (extra environment in "$@"); sets redis_pid, server_pid,
# ws_port, http, calls0, mem0.
start_meter() {
  rm -f "$work/redis.sock"
  redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$work" --logfile "$work/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
  ws_port="$(free_port)"
  local http_port
  http_port="$(free_port)"
  http="http://127.0.0.1:$http_port"
  # Loopback binds: no admin token is generated. The boot metering calls are left on (the
  # generator answers them NotSupported once per charge point).
  # The write-ahead log in the run's own directory (a config from before [wal] has none).
  local wal_env=()
  if grep -q '^\[wal\]' "$config"; then wal_env=(OCPP_METER_WAL_DIR="$work/wal"); fi
  # The generator's charge points come from one or two loopback addresses, a real fleet's from
  # thousands: the per-address connect limit (limits.connects_per_address_per_sec, 50/s) would
  # refuse most of the fleet with 429, so it is lifted here.
  local rate_env=()
  if grep -q '^connects_per_address_per_sec' "$config"; then
    rate_env=(OCPP_METER_LIMITS_CONNECTS_PER_ADDRESS_PER_SEC=1000000 OCPP_METER_LIMITS_CONNECT_BURST=1000000)
  fi
  env RUST_LOG="${BENCH_RUST_LOG:-warn}" "${wal_env[@]}" "${rate_env[@]}" "$@" "$bin/ocpp-meter" --config "$config" \
    --ws-addr "127.0.0.1:$ws_port" --http-addr "127.0.0.1:$http_port" \
    --redis-url "redis+unix://$work/redis.sock" >"$work/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 300); do curl -fsS --max-time 1 "$http/health" >/dev/null 2>&1 && break; sleep 0.1; done
  rcli config resetstat >/dev/null
  calls0="$(redis_calls)"
  mem0="$(redis_mem)"
}

# Waits until the writer stored everything ingested (at most 45 s), reads CPU and peak RSS,
# stops the server (SIGTERM drain) and Redis; sets ingested, stored, calls, mem, cpu, hwm.
stop_meter() {
  for _ in $(seq 1 45); do
    ingested="$(metric samples_ingested)"
    stored="$(metric samples_stored)"
    [ -n "$stored" ] && [ "$stored" = "$ingested" ] && break
    sleep 1
  done
  cpu="$(cpu_secs "$server_pid")"
  hwm="$(status_kib "$server_pid" VmHWM)"
  kill -TERM "$server_pid"
  wait "$server_pid" || echo "server exit status $?" >&2
  # After the drain: what the shutdown wrote counts as stored too.
  calls=$(($(redis_calls) - calls0))
  mem=$(($(redis_mem) - mem0))
  kill -TERM "$redis_pid"
  wait "$redis_pid" 2>/dev/null || true
}

results="$work/results"
: >"$results"
# One JSON object per run: {"scenario":..., metric: value, ..., "protocol": ...}.
emit() { python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@" protocol "$protocol" >>"$results"; }

run_ingest() {
  local load
  load="$(loadavg)"
  start_meter
  "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:$ws_port/ocpp/" --charge-points "$cps" \
    --samples-per-message "$spm" --duration-secs "$secs" >"$work/meter.json" 2>"$work/loadgen.log"
  # Why charge points failed, if any did, most frequent first (one line each in the log).
  sed -E 's/^[A-Z]+[0-9]+: //' "$work/loadgen.log" | sort | uniq -c | sort -rn | head -3 >&2 || true
  stop_meter
  local port null_pid
  port="$(free_port)"
  "$bin/ocpp-null-server" --listen "127.0.0.1:$port" 2>/dev/null &
  null_pid=$!
  pids+=("$null_pid")
  sleep 0.3
  "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:$port/ocpp/" --charge-points "$cps" \
    --samples-per-message "$spm" --duration-secs "$secs" >"$work/null.json" 2>/dev/null
  kill -TERM "$null_pid"
  wait "$null_pid" 2>/dev/null || true
  emit scenario ingest meter "$(cat "$work/meter.json")" null "$(cat "$work/null.json")" \
    ingested "$ingested" stored "$stored" calls "$calls" mem "$mem" cpu "$cpu" hwm "$hwm" load "$load"
}

# The fleet generator in the background; its JSON line goes to $1. Warm-up: the connect phase
# (fleet_size / 2000 per second) plus one interval, so p99 is the steady state.
start_fleet() {
  local warmup=$((fleet_size / 2000 + 12))
  "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:$ws_port/ocpp/" --charge-points "$fleet_size" \
    --samples-per-message "$spm" --interval-ms 10000 --connect-rate 2000 --source-addrs 2 \
    --id-prefix FL --warmup-secs "$warmup" --duration-secs "$2" --idle-secs "$3" \
    --reply-timeout-secs 60 >"$1" 2>"$work/fleet.log" &
  fleet_pid=$!
  pids+=("$fleet_pid")
}

run_fleet() {
  local load idle_secs=40 rss0 rss_idle
  load="$(loadavg)"
  start_meter
  rss0="$(status_kib "$server_pid" VmRSS)"
  start_fleet "$work/fleet.json" "$fleet_secs" "$idle_secs"
  # Idle: no MeterValues for 35 s, so every buffer (max_age_secs = 30) has flushed.
  sleep $((fleet_secs + 35))
  rss_idle="$(status_kib "$server_pid" VmRSS)"
  local connected_now
  connected_now="$(curl -fsS --max-time 5 "$http/metrics" | awk '$1 ~ /connected_charge_points$/ {print $2}' | head -n1)"
  wait "$fleet_pid" || true
  # Why charge points failed, most frequent first (the generator logs one line each).
  sed -E 's/^[A-Z]+[0-9]+: //' "$work/fleet.log" | sort | uniq -c | sort -rn | head -3 >&2 || true
  stop_meter
  emit scenario fleet meter "$(cat "$work/fleet.json")" ingested "$ingested" stored "$stored" \
    calls "$calls" mem "$mem" cpu "$cpu" hwm "$hwm" rss0 "$rss0" rss_idle "$rss_idle" \
    connected_now "${connected_now:-0}" load "$load"
}

run_reads() {
  local load t0 from24 to24 from30 to30
  load="$(loadavg)"
  # Raw samples older than retention.raw_days would expire at once; keep the 30-day seed.
  start_meter OCPP_METER_RETENTION_RAW_DAYS=31
  t0="$(date -u +%s)"
  # Seeding through the real ingest path: backfilled MeterValues, one message at a time.
  "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:$ws_port/ocpp/" --charge-points 1 --id-prefix RD \
    --samples-per-message "$spm" --backfill-secs-ago 86400 --backfill-step-ms 10000 \
    --messages 8640 --duration-secs 300 >"$work/seed24.json" 2>>"$work/seed.log" &
  local seed1=$!
  "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:$ws_port/ocpp/" --charge-points 1 --id-prefix AG \
    --samples-per-message "$spm" --backfill-secs-ago $((30 * 86400 - 3600)) \
    --backfill-step-ms 600000 --duration-secs 300 >"$work/seed30.json" 2>>"$work/seed.log" &
  local seed2=$!
  wait "$seed1" "$seed2"
  from24="$(date -u -d "@$((t0 - 86400 - 60))" +%Y-%m-%dT%H:%M:%SZ)"
  to24="$(date -u -d "@$((t0 + 600))" +%Y-%m-%dT%H:%M:%SZ)"
  from30="$(date -u -d "@$((t0 - 30 * 86400))" +%Y-%m-%dT%H:%M:%SZ)"
  to30="$(date -u -d "@$((t0 + 3600))" +%Y-%m-%dT%H:%M:%SZ)"
  # The fleet runs while the reads are measured: connect + warm-up, then read_secs of reads.
  local warm=$((fleet_size / 2000 + 12))
  start_fleet "$work/fleet.json" $((warm + read_secs + 5)) 0
  sleep "$warm"
  "$bin/ocpp-readgen" --duration-secs "$read_secs" --pause-ms 50 \
    --url "$http/api/v1/charge-points/RD000001/meter-values?measurand=Voltage&phase=L1-N&from=$from24&to=$to24&limit=10000" \
    --url "$http/api/v1/charge-points/AG000001/aggregates?period=hour&from=$from30&to=$to30" \
    >"$work/reads.json" 2>"$work/readgen.log"
  # How many samples the 24 h read returns and how many hourly buckets the 30-day one does.
  local n24 n30
  n24="$(curl -fsS "$http/api/v1/charge-points/RD000001/meter-values?measurand=Voltage&phase=L1-N&from=$from24&to=$to24&limit=10000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["samples"]))')"
  n30="$(curl -fsS "$http/api/v1/charge-points/AG000001/aggregates?period=hour&from=$from30&to=$to30" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["buckets"]))')"
  wait "$fleet_pid" || true
  stop_meter
  emit scenario reads reads "$(cat "$work/reads.json")" fleet "$(cat "$work/fleet.json")" \
    seed24 "$(cat "$work/seed24.json")" seed30 "$(cat "$work/seed30.json")" \
    n24 "$n24" n30 "$n30" ingested "$ingested" stored "$stored" calls "$calls" cpu "$cpu" \
    hwm "$hwm" load "$load"
}

# --- cluster: two instances on a six-node Redis Cluster -------------------------------------
# Starts the cluster (no instances) and two ocpp-meter instances on it; sets cl_http (two
# URLs), cl_ws (two ports), cl_pids, cl_masters (master ports), calls0, mem0.
start_cluster() {
  bash scripts/cluster-up.sh --no-instances --no-build --dir "$work/cluster" >/dev/null
  # shellcheck disable=SC1091
  . "$work/cluster/cluster.env"
  cl_masters=()
  for port in $NODE_PORTS; do
    redis-cli -p "$port" info replication | grep -q 'role:master' && cl_masters+=("$port")
  done
  cl_http=(); cl_ws=(); cl_pids=()
  for i in 1 2; do
    local ws hp
    ws="$(free_port)"; hp="$(free_port)"
    env RUST_LOG=warn OCPP_METER_REDIS_MODE=cluster OCPP_METER_REDIS_URLS="$REDIS_URLS" \
      OCPP_METER_REDIS_WAIT_REPLICAS="${WAIT_REPLICAS:-1}" OCPP_METER_WAL_DIR="$work/wal-$i" \
      OCPP_METER_LIMITS_CONNECTS_PER_ADDRESS_PER_SEC=1000000 OCPP_METER_LIMITS_CONNECT_BURST=1000000 \
      OCPP_METER_SERVER_INSTANCE_ID="bench-$i" \
      "$bin/ocpp-meter" --config "$config" --ws-addr "127.0.0.1:$ws" --http-addr "127.0.0.1:$hp" \
      >"$work/server-$i.log" 2>&1 &
    cl_pids+=("$!"); pids+=("$!")
    cl_ws+=("$ws"); cl_http+=("http://127.0.0.1:$hp")
  done
  for url in "${cl_http[@]}"; do
    for _ in $(seq 1 300); do curl -fsS --max-time 1 "$url/health" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for port in "${cl_masters[@]}"; do redis-cli -p "$port" config resetstat >/dev/null; done
  calls0="$(cluster_calls)"
  mem0="$(cluster_mem)"
}
cluster_calls() {
  local n=0 c
  for port in "${cl_masters[@]}"; do
    c="$(redis-cli -p "$port" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ && $1 != "cmdstat_info" {n += $3} END {print n+0}')"
    n=$((n + c))
  done
  echo "$n"
}
cluster_mem() {
  local n=0 m
  for port in "${cl_masters[@]}"; do
    m="$(redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" {print $2}')"
    n=$((n + m))
  done
  echo "$n"
}
cluster_metric_sum() {
  local n=0 v
  for url in "${cl_http[@]}"; do
    v="$(curl -fsS --max-time 5 "$url/metrics" | awk -v m="$1" '$1 ~ "(^|_)"m"(_total)?$" {print $2}' | head -n1)"
    n=$((n + ${v:-0}))
  done
  echo "$n"
}
# Waits until both instances stored what they ingested, reads CPU, stops them and the cluster;
# sets ingested, stored, calls, mem, cpu (both instances), unreplicated.
stop_cluster() {
  for _ in $(seq 1 60); do
    ingested="$(cluster_metric_sum samples_ingested)"
    stored="$(cluster_metric_sum samples_stored)"
    [ "$stored" = "$ingested" ] && break
    sleep 1
  done
  unreplicated="$(cluster_metric_sum redis_cluster_unreplicated_writes)"
  # Which commands the masters ran, most frequent first (stderr: where the per-sample cost goes).
  for port in "${cl_masters[@]}"; do redis-cli -p "$port" info commandstats; done | tr -d '\r' |
    awk -F'[:=,]' '/^cmdstat_/ {n[$1] += $3} END {for (c in n) print n[c], c}' | sort -rn | head -8 >&2
  cpu="$(python3 -c "print($(cpu_secs "${cl_pids[0]}") + $(cpu_secs "${cl_pids[1]}"))")"
  for pid in "${cl_pids[@]}"; do kill -TERM "$pid"; done
  for pid in "${cl_pids[@]}"; do wait "$pid" || echo "server exit status $?" >&2; done
  calls=$(($(cluster_calls) - calls0))
  mem=$(($(cluster_mem) - mem0))
  bash scripts/cluster-down.sh --dir "$work/cluster" >/dev/null
}

run_cluster() {
  local load half=$((cps / 2))
  # The standalone figures of the same run, for the side-by-side (SKIP_STANDALONE=1: cluster only).
  if [ "${SKIP_STANDALONE:-0}" != 1 ]; then
    run_ingest
    run_fleet
  fi
  load="$(loadavg)"
  start_cluster
  "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:${cl_ws[0]}/ocpp/" --charge-points "$half" --id-prefix CA \
    --samples-per-message "$spm" --duration-secs "$secs" >"$work/c1.json" 2>"$work/c1.log" &
  local g1=$!
  "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:${cl_ws[1]}/ocpp/" --charge-points "$half" --id-prefix CB \
    --samples-per-message "$spm" --duration-secs "$secs" >"$work/c2.json" 2>"$work/c2.log" &
  local g2=$!
  wait "$g1" "$g2"
  stop_cluster
  emit scenario cluster-ingest a "$(cat "$work/c1.json")" b "$(cat "$work/c2.json")" \
    ingested "$ingested" stored "$stored" calls "$calls" mem "$mem" cpu "$cpu" \
    unreplicated "$unreplicated" load "$load"
  load="$(loadavg)"
  start_cluster
  local fhalf=$((fleet_size / 2)) warmup=$((fleet_size / 4000 + 12))
  for i in 0 1; do
    "$bin/ocpp-loadgen" "${lg_proto[@]}" --url "ws://127.0.0.1:${cl_ws[$i]}/ocpp/" --charge-points "$fhalf" \
      --samples-per-message "$spm" --interval-ms 10000 --connect-rate 1000 --source-addrs 2 \
      --id-prefix "F$i" --warmup-secs "$warmup" --duration-secs "$fleet_secs" --idle-secs 0 \
      --reply-timeout-secs 60 >"$work/f$i.json" 2>"$work/f$i.log" &
    pids+=("$!")
    eval "fg$i=\$!"
  done
  # shellcheck disable=SC2154 # fg0 and fg1 are set by the eval above
  wait "$fg0" "$fg1" || true
  cat "$work/f0.log" "$work/f1.log" | sed -E 's/^[A-Z0-9]+[0-9]+: //' | sort | uniq -c | sort -rn | head -3 >&2 || true
  stop_cluster
  emit scenario cluster-fleet a "$(cat "$work/f0.json")" b "$(cat "$work/f1.json")" \
    ingested "$ingested" stored "$stored" calls "$calls" mem "$mem" cpu "$cpu" \
    unreplicated "$unreplicated" load "$load"
}

# The ingest scenario in 1.6, then in 2.0.1, on the same build.
run_protocols() {
  for p in ocpp1.6 ocpp2.0.1; do
    set_protocol "$p"
    echo "  ingest in $p (load average $(loadavg))" >&2
    run_ingest
  done
}

for run in $(seq 1 "$runs"); do
  for s in ingest fleet reads cluster protocols; do
    if [ "$scenario" = "$s" ] || { [ "$scenario" = all ] && [ "$s" != cluster ] && [ "$s" != protocols ]; }; then
      echo "run $run/$runs: $s (load average $(loadavg))" >&2
      "run_$s"
    fi
  done
done

python3 - "$results" "$fleet_size" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
fleet_size = int(sys.argv[2])
num = lambda v: float(v or 0)

def ingest(r):
    m, null = json.loads(r["meter"]), json.loads(r["null"])
    stored = num(r["stored"])
    return {
        "samples/s acked": m["samples_per_sec"],
        "p99 ack ms": m["latency_ms"]["p99"],
        "null samples/s": null["samples_per_sec"],
        "ratio to null %": 100 * m["samples_per_sec"] / max(null["samples_per_sec"], 1),
        "redis cmds/sample": num(r["calls"]) / max(stored, 1),
        "redis bytes/sample": num(r["mem"]) / max(stored, 1),
        "acked": m["samples_acked"],
        "stored": stored,
        "lost": m["samples_acked"] - stored,
        "failures": m["failures"] + null["failures"],
        "server cpu s": num(r["cpu"]),
        "server CPU us/sample": 1e6 * num(r["cpu"]) / max(stored, 1),
        "server peak RSS MiB": num(r["hwm"]) / 1024,
        "load average": num(r["load"]),
    }

def fleet(r):
    m = json.loads(r["meter"])
    stored = num(r["stored"])
    connected = max(m["connected"], 1)
    return {
        "connected": m["connected"],
        "failures": m["failures"],
        "MeterValues/s": m["messages_per_sec"],
        "p50 ack ms": m["latency_ms"]["p50"],
        "p99 ack ms": m["latency_ms"]["p99"],
        "max ack ms": m["latency_ms"]["max"],
        "idle RSS KiB per CP": num(r["rss_idle"]) / connected,
        "idle RSS over baseline KiB per CP": (num(r["rss_idle"]) - num(r["rss0"])) / connected,
        "connected while idle": num(r["connected_now"]),
        "redis cmds/sample": num(r["calls"]) / max(stored, 1),
        "acked": m["samples_acked"],
        "stored": stored,
        "lost": m["samples_acked"] - stored,
        "server cpu s": num(r["cpu"]),
        "server peak RSS MiB": num(r["hwm"]) / 1024,
        "load average": num(r["load"]),
    }

def reads(r):
    rd = json.loads(r["reads"])["reads"]
    fl = json.loads(r["fleet"])
    s24, s30 = json.loads(r["seed24"]), json.loads(r["seed30"])
    acked = fl["samples_acked"] + s24["samples_acked"] + s30["samples_acked"]
    stored = num(r["stored"])
    return {
        "24 h read p50 ms": rd[0]["latency_ms"]["p50"],
        "24 h read p99 ms": rd[0]["latency_ms"]["p99"],
        "24 h read count": rd[0]["count"],
        "24 h samples returned": num(r["n24"]),
        "30 d hourly read p50 ms": rd[1]["latency_ms"]["p50"],
        "30 d hourly read p99 ms": rd[1]["latency_ms"]["p99"],
        "30 d hourly read count": rd[1]["count"],
        "30 d buckets returned": num(r["n30"]),
        "read errors": rd[0]["errors"] + rd[1]["errors"],
        "fleet connected": fl["connected"],
        "fleet p99 ack ms": fl["latency_ms"]["p99"],
        "acked": acked,
        "stored": stored,
        "lost": acked - stored,
        "server cpu s": num(r["cpu"]),
        "load average": num(r["load"]),
    }

def two(r):
    a, b = json.loads(r["a"]), json.loads(r["b"])
    acked = a["samples_acked"] + b["samples_acked"]
    return a, b, acked

def cluster_ingest(r):
    a, b, acked = two(r)
    stored = num(r["stored"])
    return {
        "samples/s acked (2 instances)": a["samples_per_sec"] + b["samples_per_sec"],
        "p99 ack ms (worse instance)": max(a["latency_ms"]["p99"], b["latency_ms"]["p99"]),
        "redis cmds/sample (masters)": num(r["calls"]) / max(stored, 1),
        "redis bytes/sample (masters)": num(r["mem"]) / max(stored, 1),
        "acked": acked,
        "stored": stored,
        "lost": acked - stored,
        "failures": a["failures"] + b["failures"],
        "unreplicated write pipelines": num(r["unreplicated"]),
        "servers cpu s": num(r["cpu"]),
        "servers CPU us/sample": 1e6 * num(r["cpu"]) / max(stored, 1),
        "load average": num(r["load"]),
    }

def cluster_fleet(r):
    a, b, acked = two(r)
    stored = num(r["stored"])
    return {
        "connected": a["connected"] + b["connected"],
        "failures": a["failures"] + b["failures"],
        "MeterValues/s": a["messages_per_sec"] + b["messages_per_sec"],
        "p99 ack ms (worse instance)": max(a["latency_ms"]["p99"], b["latency_ms"]["p99"]),
        "redis cmds/sample (masters)": num(r["calls"]) / max(stored, 1),
        "acked": acked,
        "stored": stored,
        "lost": acked - stored,
        "servers cpu s": num(r["cpu"]),
        "load average": num(r["load"]),
    }

fmt = lambda v: f"{v:,.3f}" if abs(v) < 10 else (f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}")
# Runs of each protocol (a run from before --protocol existed is 1.6), 1.6 first.
protocols = sorted({r.get("protocol", "ocpp1.6") for r in runs}, key=lambda p: p != "ocpp1.6")
# Headings name the protocol unless every run was 1.6 (the output of a 1.6 run is unchanged).
label = lambda p: "" if protocols == ["ocpp1.6"] else f" ({p})"
by_protocol = {}
for proto in protocols:
    proto_runs = [r for r in runs if r.get("protocol", "ocpp1.6") == proto]
    by_protocol[proto] = proto_runs
    medians = {}
    for name, f in (("ingest", ingest), ("fleet", fleet), ("reads", reads),
                    ("cluster-ingest", cluster_ingest), ("cluster-fleet", cluster_fleet)):
        rows = [f(r) for r in proto_runs if r["scenario"] == name]
        if not rows:
            continue
        print(f"\n### {name}{label(proto)}\n")
        print("| metric | " + " | ".join(f"run {i+1}" for i in range(len(rows))) + " | median | spread |")
        print("| --- |" + " --- |" * (len(rows) + 2))
        for k in rows[0]:
            vals = [row[k] for row in rows]
            medians[(name, k)] = statistics.median(vals)
            print(f"| {k} | " + " | ".join(fmt(v) for v in vals)
                  + f" | {fmt(statistics.median(vals))} | {fmt(max(vals) - min(vals))} |")

    def target(n, text, key, ok):
        if key not in medians:
            return f"| {n} | {text} | not run | |"
        v = medians[key]
        return f"| {n} | {text} | {fmt(v)} | {'met' if ok(v) else 'NOT met'} |"

    print(f"\n### targets (medians){label(proto)}\n")
    print("| # | target | measured | verdict |")
    print("| --- | --- | --- | --- |")
    print(target("1a", ">= 280,000 samples/s acked and stored", ("ingest", "samples/s acked"), lambda v: v >= 280000))
    print(target("1b", ">= 60 % of the do-nothing server", ("ingest", "ratio to null %"), lambda v: v >= 60))
    print(target("2", "<= 0.02 Redis commands per stored sample (ingest)", ("ingest", "redis cmds/sample"), lambda v: v <= 0.02))
    print(target("3", "<= 8 B Redis memory per stored sample", ("ingest", "redis bytes/sample"), lambda v: v <= 8))
    print(target("4a", f"fleet ({fleet_size:,} CPs, 10 s) ack p99 <= 10 ms", ("fleet", "p99 ack ms"), lambda v: v <= 10))
    print(target("4b", "<= 16 KiB server RSS per idle CP", ("fleet", "idle RSS KiB per CP"), lambda v: v <= 16))
    print(target("5a", "24 h of one series (8,640) p99 <= 10 ms, fleet running", ("reads", "24 h read p99 ms"), lambda v: v <= 10))
    print(target("5b", "30 days hourly roll-ups p99 <= 10 ms, fleet running", ("reads", "30 d hourly read p99 ms"), lambda v: v <= 10))
    print(target("c2", "cluster: <= 0.02 Redis commands per stored sample (ingest, masters)", ("cluster-ingest", "redis cmds/sample (masters)"), lambda v: v <= 0.02))
    print(target("c3", "cluster: <= 8 B Redis memory per stored sample (masters)", ("cluster-ingest", "redis bytes/sample (masters)"), lambda v: v <= 8))
    for s in ("ingest", "fleet", "reads", "cluster-ingest", "cluster-fleet"):
        print(target("6", f"acked == stored ({s}; lost)", (s, "lost"), lambda v: v == 0))

# The ingest scenario of both protocols side by side (--scenario protocols, or results of both).
def side(r):
    row = ingest(r)
    m = json.loads(r["meter"])
    return {
        "samples/s acked": row["samples/s acked"],
        # Stored over the generator's run (the drain after it included, so acked == stored
        # gives the same rate).
        "samples/s stored": row["stored"] / max(m["duration_secs"], 0.001),
        "null samples/s": row["null samples/s"],
        "ratio to null %": row["ratio to null %"],
        "p99 ack ms": row["p99 ack ms"],
        "server CPU us/sample": row["server CPU us/sample"],
        "redis cmds/sample": row["redis cmds/sample"],
        "redis bytes/sample": row["redis bytes/sample"],
        "acked": row["acked"],
        "stored": row["stored"],
        "lost": row["lost"],
        "failures": row["failures"],
        "server peak RSS MiB": row["server peak RSS MiB"],
        "load average": row["load average"],
    }

ingest_rows = {p: [side(r) for r in by_protocol[p] if r["scenario"] == "ingest"] for p in protocols}
shown = [p for p in protocols if ingest_rows[p]]
if len(shown) > 1:
    print("\n### ingest, protocols side by side (medians of " + ", ".join(
        f"{len(ingest_rows[p])} {p} run{'s' if len(ingest_rows[p]) > 1 else ''}" for p in shown) + ")\n")
    print("| metric | " + " | ".join(shown) + " | " + " | ".join(f"{p} / {shown[0]} %" for p in shown[1:]) + " |")
    print("| --- |" + " --- |" * (2 * len(shown) - 1))
    for k in ingest_rows[shown[0]][0]:
        meds = [statistics.median(row[k] for row in ingest_rows[p]) for p in shown]
        ratios = [fmt(100 * v / meds[0]) if meds[0] else "-" for v in meds[1:]]
        print(f"| {k} | " + " | ".join(fmt(v) for v in meds) + " | " + " | ".join(ratios) + " |")
EOF
