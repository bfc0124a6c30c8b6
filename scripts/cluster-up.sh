#!/usr/bin/env bash
# Starts a local Redis Cluster of six nodes (three masters, three replicas) on free loopback ports
# and ocpp-meter instances on it, each with its own ports and write-ahead log: what the README's
# "Running several instances" section describes, on one machine. Stop it with
# scripts/cluster-down.sh (same --dir).
#
#   scripts/cluster-up.sh                      # 2 instances, state in ./data/cluster
#   scripts/cluster-up.sh --instances 3 --dir /tmp/c1
#   scripts/cluster-up.sh --no-instances       # the cluster only (tests, benchmarks)
#   scripts/cluster-up.sh --bin-dir /tmp/build # binaries from another build
#
# It prints, and writes to $dir/cluster.env (sourceable), the seed URLs (REDIS_URLS, as the TOML
# array OCPP_METER_REDIS_URLS takes), the node ports (NODE_PORTS), and per instance its WebSocket
# and HTTP ports (WS_PORTS, HTTP_PORTS). Never touches the machine's Redis on 6379.
set -euo pipefail
cd "$(dirname "$0")/.."

instances=2
dir=data/cluster
bin_dir=""
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --instances) instances="$2"; shift 2 ;;
    --no-instances) instances=0; shift ;;
    --dir) dir="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; build=0; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: $0 [--instances N | --no-instances] [--dir DIR] [--bin-dir DIR] [--no-build]" >&2; exit 2 ;;
  esac
done
if [ -e "$dir/cluster.env" ]; then
  echo "$dir/cluster.env exists: a cluster may be running; scripts/cluster-down.sh --dir $dir first" >&2
  exit 1
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# A free port whose cluster bus port (+10000) is free too.
free_pair() {
  python3 - "$@" <<'EOF'
import socket, sys
taken = {int(p) for p in sys.argv[1:]}
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    if port > 55000 or port in taken:
        continue
    try:
        for p in (port, port + 10000):
            t = socket.socket(); t.bind(("127.0.0.1", p)); t.close()
    except OSError:
        continue
    print(port); break
EOF
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ports=()
for _ in 1 2 3 4 5 6; do ports+=("$(free_pair "${ports[@]}")"); done
for port in "${ports[@]}"; do
  mkdir -p "$dir/node-$port"
  redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
    --cluster-config-file nodes.conf --cluster-node-timeout 2000 --repl-diskless-sync-delay 0 \
    --save "" --appendonly no --dir "$dir/node-$port" --logfile "$dir/node-$port/redis.log" \
    --daemonize yes --pidfile "$dir/node-$port/redis.pid"
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
addresses=()
for port in "${ports[@]}"; do addresses+=("127.0.0.1:$port"); done
redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log"
for _ in $(seq 1 300); do
  ok=1
  for port in "${ports[@]}"; do
    redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0
    redis-cli -p "$port" info replication | grep -Eq 'role:master|master_link_status:up' || ok=0
  done
  [ "$ok" = 1 ] && break
  sleep 0.1
done
[ "$ok" = 1 ] || { echo "the cluster did not become ok (see $dir/node-*/redis.log)" >&2; exit 1; }

urls=""
for port in "${ports[@]}"; do urls="$urls${urls:+, }\"redis://127.0.0.1:$port\""; done
{
  echo "NODE_PORTS=\"${ports[*]}\""
  echo "REDIS_URLS='[$urls]'"
} >"$dir/cluster.env"

ws_ports=()
http_ports=()
if [ "$instances" -gt 0 ]; then
  if [ "$build" = 1 ]; then cargo build --release --bins -q; fi
  bin="${bin_dir:-${CARGO_TARGET_DIR:-target}/release}"
  for i in $(seq 1 "$instances"); do
    ws="$(free_port)"; hp="$(free_port)"
    mkdir -p "$dir/instance-$i"
    env RUST_LOG="${RUST_LOG:-info}" OCPP_METER_REDIS_MODE=cluster OCPP_METER_REDIS_URLS="[$urls]" \
      OCPP_METER_REDIS_WAIT_REPLICAS="${WAIT_REPLICAS:-1}" \
      OCPP_METER_SERVER_INSTANCE_ID="instance-$i" \
      OCPP_METER_WAL_DIR="$dir/instance-$i/wal" ${INSTANCE_ENV:-} \
      "$bin/ocpp-meter" --config "${CONFIG:-config.toml}" \
      --ws-addr "127.0.0.1:$ws" --http-addr "127.0.0.1:$hp" \
      >"$dir/instance-$i/server.log" 2>&1 &
    echo $! >"$dir/instance-$i/server.pid"
    ws_ports+=("$ws"); http_ports+=("$hp")
  done
  for hp in "${http_ports[@]}"; do
    for _ in $(seq 1 300); do curl -fsS --max-time 1 "http://127.0.0.1:$hp/health" >/dev/null 2>&1 && break; sleep 0.1; done
  done
fi
{
  echo "WS_PORTS=\"${ws_ports[*]}\""
  echo "HTTP_PORTS=\"${http_ports[*]}\""
} >>"$dir/cluster.env"
cat "$dir/cluster.env"
for i in $(seq 1 "$instances"); do
  echo "instance-$i: ws://127.0.0.1:${ws_ports[$((i - 1))]}/ocpp/{id}  http://127.0.0.1:${http_ports[$((i - 1))]}/  log $dir/instance-$i/server.log"
done
