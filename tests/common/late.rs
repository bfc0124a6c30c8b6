//! Readings that reach Redis without passing through the reading server: written by a second,
//! short-lived instance on the same Redis, the way a charge point back from offline, a
//! write-ahead log replay or another server would (tests/read_cache.rs, tests/tracked_reads.rs).

use ocpp_meter::RunningServer;
use serde_json::{json, Value};

use super::reference::{iso, D};
use super::{get, start_server, test_config, ChargePoint, RedisServer};

/// MeterValues of one Voltage L1-N reading per time, `volts` each.
pub fn voltages(times: &[i64], volts: f64) -> Value {
    json!({
        "connectorId": 1,
        "meterValue": times.iter().map(|t| json!({
            "timestamp": iso(*t),
            "sampledValue": [{"value": volts.to_string(), "measurand": "Voltage", "phase": "L1-N", "unit": "V"}],
        })).collect::<Vec<_>>(),
    })
}

/// Sends `payloads` as charge point `id` through a second, short-lived instance on the same
/// Redis, which writes everything (raw chunks and roll-ups) when it shuts down: data that
/// reaches Redis without passing through the reading server's buffers.
pub async fn store_through_another_instance(redis: &RedisServer, id: &str, payloads: Vec<Value>) {
    store_all_through_another_instance(redis, vec![(id, payloads)]).await;
}

/// [`store_through_another_instance`] for several charge points.
pub async fn store_all_through_another_instance(
    redis: &RedisServer,
    sends: Vec<(&str, Vec<Value>)>,
) {
    let wal = tempfile::tempdir().unwrap();
    let mut config = test_config(redis);
    config.server.instance_id = "late-writer".into();
    config.wal.dir = wal.path().display().to_string();
    let server = start_server(config).await;
    for (id, payloads) in sends {
        let mut cp = ChargePoint::connect(&server, id).await;
        for payload in payloads {
            assert_eq!(cp.call("MeterValues", payload).await, json!({}));
        }
    }
    server.shutdown().await;
}

/// The Voltage L1-N samples of `id` over the three days before `now`.
pub async fn meter_values_of(server: &RunningServer, id: &str, now: i64) -> Vec<Value> {
    let (code, body) = get(
        server,
        &format!(
            "/api/v1/charge-points/{id}/meter-values?measurand=Voltage&phase=L1-N&from={}&to={}&limit=10000",
            iso(now - 3 * D),
            iso(now + 60_000)
        ),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["samples"].as_array().unwrap().clone()
}

/// The `period` buckets of `id` over the five days before `now`.
pub async fn buckets_of(server: &RunningServer, id: &str, period: &str, now: i64) -> Vec<Value> {
    let (code, body) = get(
        server,
        &format!(
            "/api/v1/charge-points/{id}/aggregates?period={period}&from={}&to={}",
            iso(now - 5 * D),
            iso(now + 60_000)
        ),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["buckets"].as_array().unwrap().clone()
}

/// Count of readings in the bucket starting at `start`.
pub fn count_at(buckets: &[Value], start: i64) -> u64 {
    buckets
        .iter()
        .filter(|b| b["start"] == json!(iso(start)))
        .map(|b| b["count"].as_u64().unwrap())
        .sum()
}
