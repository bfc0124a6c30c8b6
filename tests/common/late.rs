//! Readings that reach Redis without passing through the reading server: written by a second,
//! short-lived instance on the same Redis, the way a charge point back from offline, a
//! write-ahead log replay or another server would (tests/read_cache.rs, tests/tracked_reads.rs).

use serde_json::{json, Value};

use super::reference::iso;
use super::{start_server, test_config, ChargePoint, RedisServer};

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
