# Sourced by scripts/fleet-profile.sh and scripts/fleet-rss.sh (issue 5's profiling aids): starts
# a private redis-server on a unix socket in $W and the release server ($bin/ocpp-meter with the
# shipped config.toml and $SERVER_ENV) on free loopback ports; sets rp, sp, ws, hp.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_redis_and_server() {
  redis-server --port 0 --unixsocket "$W/redis.sock" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$W" --logfile "$W/redis.log" &
  rp=$!
  sleep 0.5
  ws=$(free_port); hp=$(free_port)
  # The fleet connects thousands of charge points from two addresses: lift the per-address
  # connect limit (limits.connects_per_address_per_sec, 50/s) as scripts/bench.sh does, or most
  # of them are refused with 429 and the figures are per charge point that never connected.
  # shellcheck disable=SC2086 # SERVER_ENV holds NAME=value words
  env RUST_LOG=warn OCPP_METER_WAL_DIR="$W/wal" OCPP_METER_LIMITS_CONNECTS_PER_ADDRESS_PER_SEC=1000000 \
    OCPP_METER_LIMITS_CONNECT_BURST=1000000 ${SERVER_ENV:-} "$bin/ocpp-meter" --config config.toml \
    --ws-addr "127.0.0.1:$ws" --http-addr "127.0.0.1:$hp" \
    --redis-url "redis+unix://$W/redis.sock" >"$W/server.log" 2>&1 &
  sp=$!
  for _ in $(seq 1 100); do
    curl -fsS --max-time 1 "http://127.0.0.1:$hp/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
}
