#!/usr/bin/env bash
# Smoke test of the ocpp-meter admin API for one charge point: every read endpoint, its status
# code and the shape of its JSON. Stops with a clear message and a non-zero status at the first
# failure.
#
#   ./scripts/test_meter_values.sh http://localhost:8081 TEST-CP-001
#
# Needs curl and jq. When the admin API requires a bearer token, set OCPP_ADMIN_TOKEN.
# OCPP_CURL_OPTS adds curl options (e.g. "--cacert ca.pem" for https).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 ADMIN_BASE_URL CHARGE_POINT_ID   (e.g. $0 http://localhost:8081 TEST-CP-001)" >&2
  exit 2
fi
base="${1%/}"
cp_id="$2"
for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL: $tool is not installed" >&2; exit 2; }
done

auth=()
if [ -n "${OCPP_ADMIN_TOKEN:-}" ]; then
  auth=(-H "Authorization: Bearer ${OCPP_ADMIN_TOKEN}")
fi
# shellcheck disable=SC2206 # word splitting of the extra options is intended
extra=(${OCPP_CURL_OPTS:-})
body="$(mktemp)"
trap 'rm -f "$body"' EXIT
checks=0

fail() {
  echo "FAIL: $*" >&2
  if [ -s "$body" ]; then
    echo "      body: $(head -c 500 "$body")" >&2
  fi
  exit 1
}

# get PATH EXPECTED_STATUS [JQ_FILTER DESCRIPTION]...: one request, its status, then every
# filter must hold (jq -e) on the body.
get() {
  local path="$1" expected="$2"
  shift 2
  local status
  status="$(curl -sS "${auth[@]}" "${extra[@]}" -o "$body" -w '%{http_code}' \
    --max-time 10 "${base}${path}")" || fail "GET ${path}: curl could not reach ${base}"
  [ "$status" = "$expected" ] || fail "GET ${path}: status ${status}, expected ${expected}"
  jq -e . "$body" >/dev/null 2>&1 || fail "GET ${path}: the body is not JSON"
  while [ $# -ge 2 ]; do
    jq -e "$1" "$body" >/dev/null 2>&1 || fail "GET ${path}: expected $2 (jq: $1)"
    shift 2
  done
  checks=$((checks + 1))
  echo "ok   GET ${path} -> ${status}"
}

# The sample shape, shared by meter-values, latest and stats.
sample='(.timestamp | type == "string") and (.connector_id | type == "number")
  and (.measurand | type == "string") and (.unit | type == "string")
  and ((.value | type == "number") or has("raw_value"))
  and (.transaction_id == null or (.transaction_id | type == "number"))'
thresholds='([.power_max_w, .temperature_max_c, .temperature_min_c, .voltage_min_v,
  .voltage_max_v, .current_max_a, .hysteresis_pct] | all(type == "number"))'
bucket='(.start | type == "string") and (.count | type == "number")
  and (.measurand | type == "string") and (.connector_id | type == "number")'
id_json="$(jq -rn --arg id "$cp_id" '$id | @uri')"
cp="/api/v1/charge-points/${id_json}"

echo "Smoke test of ${base} for charge point ${cp_id}"
get /health 200 '.status == "ok"' 'status "ok"'
get /ready 200 '.status == "ready"' 'status "ready"' \
  '.redis == "up"' 'redis "up"' \
  '.reasons == []' 'no reasons'
get /api/v1/charge-points 200 'type == "array"' 'an array of charge points' \
  "any(.[]; .id == \"${cp_id}\")" "charge point ${cp_id} in the list" \
  'all(.[]; (.id | type == "string") and (.connected | type == "boolean") and (.connectors | type == "array"))' \
  'id, connected and connectors on every charge point'
get "${cp}" 200 ".id == \"${cp_id}\"" "id ${cp_id}" \
  '.connected | type == "boolean"' 'connected (boolean)' \
  '.connectors | type == "array"' 'connectors (array)' \
  'has("vendor") and has("model") and has("firmware_version") and has("serial_number") and has("last_seen")' \
  'vendor, model, firmware_version, serial_number, last_seen'
get "${cp}/meter-values" 200 ".charge_point_id == \"${cp_id}\"" "charge_point_id ${cp_id}" \
  '(.from | type == "string") and (.to | type == "string")' 'from and to' \
  '.samples | type == "array"' 'samples (array)' \
  "all(.samples[]; ${sample})" 'every sample with timestamp, connector_id, measurand, unit, value'
meter_values="$(cat "$body")"
get "${cp}/meter-values?limit=5" 200 '.samples | length <= 5' 'at most 5 samples with limit=5'
get "${cp}/meter-values?from=not-a-time" 400 '.error | type == "string"' 'an {"error"} body'
get "${cp}/meter-values/latest" 200 ".charge_point_id == \"${cp_id}\"" "charge_point_id ${cp_id}" \
  '.samples | type == "array"' 'samples (array)' \
  "all(.samples[]; ${sample})" 'every sample well formed'
get "${cp}/aggregates?period=hour" 200 '.period == "hour"' 'period "hour"' \
  '.buckets | type == "array"' 'buckets (array)' \
  "all(.buckets[]; ${bucket})" 'every bucket with start, count, measurand, connector_id'
get "${cp}/aggregates?period=day" 200 '.period == "day"' 'period "day"' \
  '.buckets | type == "array"' 'buckets (array)' \
  "all(.buckets[]; ${bucket})" 'every bucket well formed'
get "${cp}/aggregates?period=week" 400 '.error | type == "string"' 'an {"error"} body for period=week'
get "${cp}/stats" 200 ".charge_point_id == \"${cp_id}\"" "charge_point_id ${cp_id}" \
  '.connected | type == "boolean"' 'connected (boolean)' \
  '(.samples_total | type == "number") and (.samples_last_minute | type == "number") and (.messages_per_minute | type == "number")' \
  'samples_total, samples_last_minute, messages_per_minute' \
  '.open_transactions | type == "array"' 'open_transactions (array)' \
  '.latest | type == "array"' 'latest (array)'
stats="$(cat "$body")"
get "/api/v1/alerts?charge_point=${id_json}" 200 '.alerts | type == "array"' 'alerts (array)' \
  "all(.alerts[]; .charge_point_id == \"${cp_id}\" and (.rule | type == \"string\") and (.state == \"active\" or .state == \"cleared\"))" \
  "only ${cp_id}'s alerts, each with rule and state"
get "/api/v1/alerts?state=active&limit=10" 200 '.alerts | length <= 10' 'at most 10 alerts' \
  'all(.alerts[]; .state == "active")' 'only active alerts'
get /api/v1/thresholds 200 "$thresholds" 'the seven threshold numbers'
get "${cp}/thresholds" 200 "$thresholds" 'the seven threshold numbers' \
  '.source == "global" or .source == "charge_point"' 'source "global" or "charge_point"'
get /api/v1/charge-points/no-such-charge-point-zz9 404 '.error | type == "string"' 'an {"error"} body'

# A transaction of this charge point: an open one from stats, else the newest in its samples.
tx="$(jq -r '[.open_transactions[].transaction_id] | last // empty' <<<"$stats")"
if [ -z "$tx" ]; then
  tx="$(jq -r '[.samples[].transaction_id | select(. != null)] | last // empty' <<<"$meter_values")"
fi
if [ -n "$tx" ]; then
  get "/api/v1/transactions/${tx}" 200 ".transaction_id == ${tx}" "transaction_id ${tx}" \
    ".charge_point_id == \"${cp_id}\"" "charge_point_id ${cp_id}" \
    '.state == "active" or .state == "stopped"' 'state "active" or "stopped"' \
    '(.meter_start | type == "number") and (.start_time | type == "string") and (.connector_id | type == "number")' \
    'meter_start, start_time, connector_id'
else
  echo "skip GET /api/v1/transactions/{id}: no transaction of ${cp_id} found in stats or the last hour's samples"
fi

echo "PASS: ${checks} requests to ${base} for ${cp_id} answered as expected"
