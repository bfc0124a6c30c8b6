#!/usr/bin/env bash
# End-to-end smoke run of the seed's two scripts, as CI runs it (.ci/run calls this after the
# tests): starts a private redis-server on a unix socket and the server binary on free loopback
# ports, runs scripts/simulate_meter_values.py against it for a few seconds (with a power
# breach), checks the alert it raises, runs scripts/test_meter_values.sh, then stops the server
# with SIGTERM and checks that it exits 0. Installs what a clean machine lacks (curl, jq,
# python3-venv, the simulator's pinned packages) and cleans up on exit.
#
#   scripts/ci_smoke.sh            # uses target/debug/ocpp-meter (built by `cargo test`)
#   SMOKE_BIN=target/release/ocpp-meter SMOKE_CONFIG=my.toml scripts/ci_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "==> ci_smoke: $*"; }
die() {
  echo "ci_smoke: FAILED: $*" >&2
  exit 1
}

bin="${SMOKE_BIN:-target/debug/ocpp-meter}"
config="${SMOKE_CONFIG:-config.toml}"
cp_id="CI-SMOKE-CP"
venv="target/ci-smoke-venv"
work="$(mktemp -d /tmp/ocpp-meter-smoke.XXXXXX)"
server_pid=""
redis_pid=""

cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
    kill -TERM "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "---- last lines of the server log ----" >&2
    tail -n 40 "$work/server.log" >&2
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

step "checking tools"
need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
apt_updated=""
apt_install() {
  step "installing $* with apt-get"
  if [ -z "$apt_updated" ]; then
    apt-get update -q || die "apt-get update failed"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" || die "apt-get install $* failed"
}
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_install "${need_apt[@]}"
fi

step "preparing the simulator's venv in $venv (scripts/requirements.txt)"
if [ ! -x "$venv/bin/python3" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv" || die "python3 -m venv failed even with python3-venv installed"
  fi
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt \
  || die "pip install -r scripts/requirements.txt failed"

if [ ! -x "$bin" ]; then
  step "building $bin (not found)"
  cargo build --bin ocpp-meter || die "cargo build failed"
fi

step "starting a private redis-server on a unix socket"
redis-server --port 0 --unixsocket "$work/redis.sock" --unixsocketperm 700 --save "" \
  --appendonly no --dir "$work" --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 1 100); do
  redis-cli -s "$work/redis.sock" ping >/dev/null 2>&1 && break
  kill -0 "$redis_pid" 2>/dev/null || die "redis-server exited: $(tail -n 5 "$work/redis.log")"
  sleep 0.1
done
redis-cli -s "$work/redis.sock" ping >/dev/null 2>&1 || die "redis-server did not answer within 10 s"

# Two free loopback ports, picked by the kernel.
read -r ws_port http_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
[ -n "$ws_port" ] && [ -n "$http_port" ] || die "could not pick free ports"

# With admin tokens supported (an [admin] section in the config), run with one, so the smoke
# test's OCPP_ADMIN_TOKEN path is exercised and an unauthenticated request is seen refused.
server_env=("OCPP_METER_WAL_DIR=$work/wal")
auth=()
if grep -q '^\[admin\]' "$config"; then
  token="ci-smoke-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  server_env+=("OCPP_METER_ADMIN_TOKENS=[\"$token\"]")
  auth=(-H "Authorization: Bearer $token")
  export OCPP_ADMIN_TOKEN="$token"
fi

step "starting $bin (ws 127.0.0.1:$ws_port, http 127.0.0.1:$http_port${auth[*]:+, admin token})"
env "${server_env[@]}" RUST_LOG="${RUST_LOG:-info}" RUST_BACKTRACE=0 "$bin" --config "$config" \
  --ws-addr "127.0.0.1:$ws_port" --http-addr "127.0.0.1:$http_port" \
  --redis-url "redis+unix://$work/redis.sock" >"$work/server.log" 2>&1 &
server_pid=$!
http="http://127.0.0.1:$http_port"
for _ in $(seq 1 300); do
  curl -fsS --max-time 1 "$http/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || die "the server exited during start"
  sleep 0.1
done
curl -fsS --max-time 2 "$http/health" >/dev/null 2>&1 || die "the server did not answer /health within 30 s"

if [ ${#auth[@]} -gt 0 ]; then
  step "checking that the admin API refuses a request without the token"
  status="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$http/api/v1/charge-points")"
  [ "$status" = "401" ] || die "GET /api/v1/charge-points without a token answered $status, not 401"
fi

step "running the simulator (3 MeterValues, 1 s apart, power breach)"
"$venv/bin/python3" scripts/simulate_meter_values.py "ws://127.0.0.1:$ws_port" "$cp_id" \
  --interval 1 --count 3 --breach power --timeout 15 \
  || die "scripts/simulate_meter_values.py failed"

step "checking that the breach raised a high_power alert"
curl -fsS "${auth[@]}" --max-time 5 "$http/api/v1/alerts?charge_point=$cp_id" \
  | jq -e 'any(.alerts[]; .rule == "high_power" and .charge_point_id == "'"$cp_id"'")' >/dev/null \
  || die "no high_power alert for $cp_id after the simulator's power breach"

step "running the admin API smoke test"
./scripts/test_meter_values.sh "$http" "$cp_id" || die "scripts/test_meter_values.sh failed"

step "checking that the simulator's samples are stored (five measurands, three phases)"
curl -fsS "${auth[@]}" --max-time 5 "$http/api/v1/charge-points/$cp_id/meter-values/latest" | jq -e '
  ([.samples[].measurand] | unique) as $m
  | (["Current.Import", "Energy.Active.Import.Register", "Power.Active.Import", "Temperature",
      "Voltage"] - $m) == []
  and ([.samples[] | select(.measurand == "Voltage") | .phase] | sort) == ["L1", "L2", "L3"]' \
  >/dev/null || die "latest samples lack a measurand or a phase"

step "checking the transaction and its energy roll-up"
curl -fsS "${auth[@]}" --max-time 5 "$http/api/v1/charge-points/$cp_id/aggregates?period=hour&measurand=Energy.Active.Import.Register" \
  | jq -e 'any(.buckets[]; .energy_wh > 0)' >/dev/null \
  || die "no hourly Energy.Active.Import.Register bucket with energy_wh > 0 for $cp_id"
tx="$(curl -fsS "${auth[@]}" --max-time 5 "$http/api/v1/charge-points/$cp_id/meter-values" \
  | jq -r '[.samples[].transaction_id | select(. != null)] | last // empty')"
[ -n "$tx" ] || die "no sample of $cp_id carries a transaction id"
curl -fsS "${auth[@]}" --max-time 5 "$http/api/v1/transactions/$tx" \
  | jq -e '.state == "stopped" and .meter_start == 1000 and .meter_stop > 1000 and .energy_wh > 0' \
  >/dev/null || die "transaction $tx is not stopped with meter_start 1000 and energy_wh > 0"

# Charge point passwords (security profile 1), when the server has the route: the simulator
# gets in with the right one and is refused with the wrong one.
password="ci-smoke-pw-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
status="$(curl -sS "${auth[@]}" -o "$work/put.json" -w '%{http_code}' --max-time 10 -X PUT \
  -H 'Content-Type: application/json' -d "{\"password\": \"$password\"}" \
  "$http/api/v1/charge-points/$cp_id/password")"
case "$status" in
  2??)
    step "simulator with the charge point's password (accepted) and a wrong one (refused)"
    "$venv/bin/python3" scripts/simulate_meter_values.py "ws://127.0.0.1:$ws_port" "$cp_id" \
      --interval 0 --count 1 --timeout 15 --quiet --password "$password" \
      || die "the simulator was not let in with its password"
    if "$venv/bin/python3" scripts/simulate_meter_values.py "ws://127.0.0.1:$ws_port" "$cp_id" \
      --interval 0 --count 1 --timeout 15 --quiet --password "wrong-$password" 2>"$work/sim.err"; then
      die "the simulator got in with a wrong password"
    fi
    grep -q 401 "$work/sim.err" || die "a wrong password was not refused with 401: $(cat "$work/sim.err")"
    ;;
  404) step "no password route on this server: Basic auth not exercised" ;;
  *) die "PUT .../password answered $status: $(cat "$work/put.json")" ;;
esac

step "stopping the server with SIGTERM"
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
[ "$server_status" -eq 0 ] || die "the server exited with status $server_status after SIGTERM"

if command -v systemd-analyze >/dev/null 2>&1; then
  step "systemd-analyze verify scripts/ocpp-meter.service (ExecStart pointed at $bin)"
  mkdir -p "$work/unit"
  sed "s#/usr/local/bin/ocpp-meter#$(realpath "$bin")#g" scripts/ocpp-meter.service \
    >"$work/unit/ocpp-meter.service"
  systemd-analyze verify "$work/unit/ocpp-meter.service" || die "systemd-analyze verify failed"
else
  step "systemd-analyze not installed: unit file not verified"
fi

step "PASS"
