//! Threshold and data-quality alerts over real sockets against a private redis-server: each
//! rule fires once per incident and clears with hysteresis, units and phases are handled,
//! thresholds are validated and survive a restart, alerts are acknowledged, and the webhook
//! delivers (and retries) every raise and clear.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::reference::Clock;
use common::*;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

/// A request with a JSON body (or none) on the admin API: status and JSON answer.
async fn send(
    server: &RunningServer,
    method: &'static str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    spawn_request(server.http_addr, method, path, body)
        .await
        .expect("request task")
}

/// Alerts of a charge point as the API lists them (`state` = active, cleared or all).
async fn alerts(server: &RunningServer, cp: &str, state: &str) -> Vec<Value> {
    let (status, body) = get(
        server,
        &format!("/api/v1/alerts?charge_point={cp}&state={state}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().cloned().unwrap_or_default()
}

fn of_rule<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

fn thresholds(power_max_w: f64) -> Value {
    json!({"power_max_w": power_max_w, "temperature_max_c": 70.0, "temperature_min_c": -10.0,
        "voltage_min_v": 207.0, "voltage_max_v": 253.0, "current_max_a": 80.0, "hysteresis_pct": 2.0})
}

async fn power(cp: &mut ChargePoint, clock: &mut Clock, connector: u32, value: &str, unit: &str) {
    let payload = meter_values(
        connector,
        None,
        &clock.next(),
        json!([{"value": value, "measurand": "Power.Active.Import", "unit": unit}]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
}

#[actix_web::test]
async fn each_threshold_fires_once_and_clears_with_hysteresis() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-AL1").await;
    cp.boot().await;
    let mut clock = Clock::new();

    // Three breaching readings, one incident; then just inside (49.5 kW) keeps it active.
    for value in ["51", "52", "53"] {
        power(&mut cp, &mut clock, 1, value, "kW").await;
    }
    power(&mut cp, &mut clock, 1, "49.5", "kW").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            of_rule(&alerts(&server, "CP-AL1", "active").await, "high_power")
                .first()
                .is_some_and(|a| a["value"] == json!(49500.0))
        })
        .await,
        "the active alert follows the latest reading"
    );
    let active = alerts(&server, "CP-AL1", "all").await;
    let high = of_rule(&active, "high_power");
    assert_eq!(
        high.len(),
        1,
        "one alert for three breaching readings: {active:?}"
    );
    assert_eq!(high[0]["severity"], "critical");
    assert_eq!(high[0]["threshold"], json!(50000.0));
    assert_eq!(high[0]["unit"], "W");
    assert_eq!(high[0]["measurand"], "Power.Active.Import");
    assert_eq!(high[0]["phase"], Value::Null);
    assert_eq!(high[0]["connector_id"], 1);
    assert_eq!(high[0]["state"], "active");
    let id = high[0]["id"].clone();

    // Past the hysteresis (<= 49 kW) it clears.
    power(&mut cp, &mut clock, 1, "49", "kW").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL1", "cleared")
                .await
                .iter()
                .any(|a| a["id"] == id)
        })
        .await
    );
    let cleared = alerts(&server, "CP-AL1", "cleared").await;
    assert_eq!(cleared[0]["value"], json!(49000.0));
    assert!(cleared[0]["cleared_at"].is_string());
    assert!(alerts(&server, "CP-AL1", "active").await.is_empty());

    // The other safety rules, each breached twice.
    for _ in 0..2 {
        let payload = meter_values(
            2,
            None,
            &clock.next(),
            json!([
                {"value": "71", "measurand": "Temperature", "unit": "Celsius", "location": "Body"},
                {"value": "254", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
                {"value": "81", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
                {"value": "-11", "measurand": "Temperature", "unit": "Celsius", "location": "Outlet"}
            ]),
        );
        cp.call("MeterValues", payload).await;
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL1", "active").await.len() == 4
        })
        .await
    );
    let active = alerts(&server, "CP-AL1", "active").await;
    for rule in [
        "high_temperature",
        "low_temperature",
        "voltage_out_of_range",
        "high_current",
    ] {
        assert_eq!(of_rule(&active, rule).len(), 1, "{rule}: {active:?}");
    }
    assert_eq!(of_rule(&active, "voltage_out_of_range")[0]["phase"], "L2-N");
    assert_eq!(of_rule(&active, "high_current")[0]["phase"], "L3");

    // Low temperature at -9.9 is inside but not past the hysteresis (-9.8): still active (the
    // body sensor's 20 C at the same instant does not clear it); the others are back in range.
    let payload = meter_values(
        2,
        None,
        &clock.next(),
        json!([
            {"value": "20", "measurand": "Temperature", "unit": "Celsius", "location": "Body"},
            {"value": "230", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
            {"value": "10", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
            {"value": "-9.9", "measurand": "Temperature", "unit": "Celsius", "location": "Outlet"}
        ]),
    );
    cp.call("MeterValues", payload).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            let active = alerts(&server, "CP-AL1", "active").await;
            active.len() == 1 && active[0]["value"] == json!(-9.9)
        })
        .await
    );
    let active = alerts(&server, "CP-AL1", "active").await;
    assert_eq!(active[0]["rule"], "low_temperature");
    assert_eq!(alerts(&server, "CP-AL1", "all").await.len(), 5);
    server.shutdown().await;
}

#[actix_web::test]
async fn units_phase_sums_and_line_to_line_voltage() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-AL2").await;
    cp.boot().await;
    let mut clock = Clock::new();

    power(&mut cp, &mut clock, 1, "49", "kW").await; // 49 kW: nothing
    power(&mut cp, &mut clock, 2, "51", "kW").await; // 51 kW: fires
    power(&mut cp, &mut clock, 3, "51000", "W").await; // 51000 W: fires
                                                       // Connector 4 reports only phases: 3 x 17 kW = 51 kW fires; the line-to-line reading is
                                                       // not added.
    let payload = meter_values(
        4,
        None,
        &clock.next(),
        json!([
            {"value": "17", "measurand": "Power.Active.Import", "phase": "L1", "unit": "kW"},
            {"value": "17", "measurand": "Power.Active.Import", "phase": "L2", "unit": "kW"},
            {"value": "17", "measurand": "Power.Active.Import", "phase": "L3", "unit": "kW"}
        ]),
    );
    cp.call("MeterValues", payload).await;
    // Connector 5: 3 x 16 kW = 48 kW, nothing.
    let payload = meter_values(
        5,
        None,
        &clock.next(),
        json!([
            {"value": "16000", "measurand": "Power.Active.Import", "phase": "L1-N"},
            {"value": "16000", "measurand": "Power.Active.Import", "phase": "L2-N"},
            {"value": "16000", "measurand": "Power.Active.Import", "phase": "L3-N"}
        ]),
    );
    cp.call("MeterValues", payload).await;
    // 400 V line-to-line is normal; 400 V line-to-neutral is not.
    let payload = meter_values(
        6,
        None,
        &clock.next(),
        json!([
            {"value": "400", "measurand": "Voltage", "phase": "L1-L2", "unit": "V"},
            {"value": "400", "measurand": "Voltage", "phase": "L2-L3", "unit": "V"},
            {"value": "400", "measurand": "Voltage", "phase": "L1-N", "unit": "V"}
        ]),
    );
    cp.call("MeterValues", payload).await;

    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL2", "active").await.len() >= 4
        })
        .await
    );
    let active = alerts(&server, "CP-AL2", "active").await;
    let mut power_connectors: Vec<u64> = of_rule(&active, "high_power")
        .iter()
        .map(|a| a["connector_id"].as_u64().unwrap_or(0))
        .collect();
    power_connectors.sort();
    assert_eq!(power_connectors, [2, 3, 4], "{active:?}");
    for alert in of_rule(&active, "high_power") {
        assert_eq!(alert["value"], json!(51000.0), "{alert}");
        assert_eq!(alert["phase"], Value::Null);
    }
    let voltage = of_rule(&active, "voltage_out_of_range");
    assert_eq!(voltage.len(), 1, "{active:?}");
    assert_eq!(voltage[0]["phase"], "L1-N");
    assert_eq!(voltage[0]["threshold"], json!(253.0));
    assert_eq!(active.len(), 4);
    server.shutdown().await;
}

#[actix_web::test]
async fn thresholds_are_validated_persist_across_a_restart_and_alerts_are_acknowledged() {
    let redis = RedisServer::start();
    let config = test_config(&redis);
    let server = start_server(config.clone()).await;

    let (status, global) = get(&server, "/api/v1/thresholds").await;
    assert_eq!(status, 200);
    assert_eq!(global, thresholds(50000.0));

    // Validation: a bad value, a missing field and an unknown field are 400s naming the field.
    let mut bad = thresholds(0.0);
    let (status, body) = send(&server, "PUT", "/api/v1/thresholds", Some(bad.clone())).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap_or("").contains("power_max_w"),
        "{body}"
    );
    bad = thresholds(1000.0);
    bad["voltage_min_v"] = json!(300);
    let (status, body) = send(&server, "PUT", "/api/v1/thresholds", Some(bad.clone())).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("voltage_max_v"),
        "{body}"
    );
    bad = thresholds(1000.0);
    bad.as_object_mut().map(|o| o.remove("hysteresis_pct"));
    let (status, body) = send(&server, "PUT", "/api/v1/thresholds", Some(bad.clone())).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("hysteresis_pct"),
        "{body}"
    );
    bad = thresholds(1000.0);
    bad["bogus"] = json!(1);
    let (status, body) = send(
        &server,
        "PUT",
        "/api/v1/charge-points/CP-AL3/thresholds",
        Some(bad),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap_or("").contains("bogus"),
        "{body}"
    );
    bad = thresholds(1000.0);
    bad["current_max_a"] = json!("lots");
    let (status, body) = send(&server, "PUT", "/api/v1/thresholds", Some(bad)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("current_max_a"),
        "{body}"
    );

    // A global change and a per charge point override.
    let mut global = thresholds(50000.0);
    global["temperature_max_c"] = json!(60.0);
    let (status, body) = send(&server, "PUT", "/api/v1/thresholds", Some(global.clone())).await;
    assert_eq!((status, body), (200, global.clone()));
    let (status, body) = send(
        &server,
        "PUT",
        "/api/v1/charge-points/CP-AL3/thresholds",
        Some(thresholds(10000.0)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "charge_point");
    let (_, other) = get(&server, "/api/v1/charge-points/CP-OTHER/thresholds").await;
    assert_eq!(other["source"], "global");
    assert_eq!(other["temperature_max_c"], json!(60.0));

    // Read, edit, write back: the document a GET gives (with its read-only "source") is
    // accepted by the PUT of the same route, and by the global one; "source" is ignored.
    let (_, mut doc) = get(&server, "/api/v1/charge-points/CP-RT/thresholds").await;
    assert_eq!(doc["source"], "global");
    doc["voltage_max_v"] = json!(250.0);
    let (status, body) = send(
        &server,
        "PUT",
        "/api/v1/charge-points/CP-RT/thresholds",
        Some(doc.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["source"], "charge_point", "the override is in force");
    assert_eq!(body["voltage_max_v"], json!(250.0));
    let (_, mut round) = get(&server, "/api/v1/charge-points/CP-RT/thresholds").await;
    round["source"] = json!("anything");
    let (status, body) = send(&server, "PUT", "/api/v1/thresholds", Some(round)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("source").is_none(), "{body}");
    assert_eq!(body["voltage_max_v"], json!(250.0));
    let (status, _) = send(&server, "PUT", "/api/v1/thresholds", Some(global.clone())).await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &server,
        "DELETE",
        "/api/v1/charge-points/CP-RT/thresholds",
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status}");

    // The override applies: 11 kW fires on CP-AL3.
    let mut cp = ChargePoint::connect(&server, "CP-AL3").await;
    cp.boot().await;
    let mut clock = Clock::new();
    power(&mut cp, &mut clock, 1, "11", "kW").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL3", "active").await.len() == 1
        })
        .await
    );
    let alert = alerts(&server, "CP-AL3", "active").await[0].clone();
    assert_eq!(alert["threshold"], json!(10000.0));
    drop(cp);
    server.shutdown().await;

    // After a restart on the same Redis: thresholds and the active incident are still there.
    let server = start_server(config).await;
    let (_, body) = get(&server, "/api/v1/charge-points/CP-AL3/thresholds").await;
    assert_eq!(body["source"], "charge_point");
    assert_eq!(body["power_max_w"], json!(10000.0));
    let (_, body) = get(&server, "/api/v1/thresholds").await;
    assert_eq!(body, global);
    let mut cp = ChargePoint::connect(&server, "CP-AL3").await;
    cp.boot().await;
    power(&mut cp, &mut clock, 1, "12", "kW").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            let active = alerts(&server, "CP-AL3", "active").await;
            active.len() == 1 && active[0]["value"] == json!(12000.0)
        })
        .await,
        "the restored alert is updated, not raised again"
    );
    let all = alerts(&server, "CP-AL3", "all").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["id"], alert["id"]);

    // Acknowledge: the alert with acknowledged_at; unknown ids are 404.
    let id = alert["id"].as_str().unwrap_or_default().to_owned();
    let (status, acked) = send(&server, "POST", &format!("/api/v1/alerts/{id}/ack"), None).await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["id"], alert["id"]);
    assert!(acked["acknowledged_at"].is_string());
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL3", "active").await[0]["acknowledged_at"]
                == acked["acknowledged_at"]
        })
        .await
    );
    let (status, body) = send(&server, "POST", "/api/v1/alerts/no-such-alert/ack", None).await;
    assert_eq!(status, 404, "{body}");

    // DELETE falls back to the global document.
    let (status, body) = send(
        &server,
        "DELETE",
        "/api/v1/charge-points/CP-AL3/thresholds",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["source"], "global");
    assert_eq!(body["power_max_w"], json!(50000.0));
    // 12 kW is now far below 50 kW: the alert clears.
    power(&mut cp, &mut clock, 1, "12", "kW").await;
    power(&mut cp, &mut clock, 1, "11", "kW").await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL3", "active").await.is_empty()
        })
        .await
    );

    // The list's own filters.
    let (status, _) = get(&server, "/api/v1/alerts?state=bogus").await;
    assert_eq!(status, 400);
    let (status, _) = get(&server, "/api/v1/alerts?limit=1001").await;
    assert_eq!(status, 400);
    let (_, body) = get(&server, "/api/v1/alerts?since=2999-01-01T00:00:00Z").await;
    assert_eq!(body["alerts"], json!([]));
    let (_, body) = get(&server, "/api/v1/alerts?limit=1").await;
    assert_eq!(body["alerts"][0]["id"], alert["id"]);
    server.shutdown().await;
}

/// A webhook receiver: records every body; answers 500 to the first request, 200 after.
async fn start_receiver() -> (String, Arc<Mutex<Vec<Value>>>, actix_web::dev::ServerHandle) {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let recorded = bodies.clone();
    let server = actix_web::HttpServer::new(move || {
        let recorded = recorded.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |body: actix_web::web::Bytes| {
                let recorded = recorded.clone();
                async move {
                    let mut bodies = recorded.lock().unwrap();
                    bodies.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    if bodies.len() == 1 {
                        actix_web::HttpResponse::InternalServerError().finish()
                    } else {
                        actix_web::HttpResponse::Ok().finish()
                    }
                }
            },
        ))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (format!("http://{addr}/hook"), bodies, handle)
}

#[actix_web::test]
async fn the_webhook_delivers_raises_and_clears_and_retries() {
    let (url, bodies, receiver) = start_receiver().await;
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.alerts.webhook.url = url;
    config.alerts.webhook.retry_max_secs = 1;
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "CP-AL4").await;
    cp.boot().await;
    let mut clock = Clock::new();
    power(&mut cp, &mut clock, 1, "60", "kW").await;
    power(&mut cp, &mut clock, 1, "61", "kW").await;
    power(&mut cp, &mut clock, 1, "10", "kW").await;

    assert!(
        eventually(Duration::from_secs(10), || async {
            bodies.lock().unwrap().len() >= 3
        })
        .await
    );
    let got = bodies.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        3,
        "one raise (twice: refused, then retried) and one clear: {got:?}"
    );
    assert_eq!(got[0]["event"], "alert");
    assert_eq!(
        got[0], got[1],
        "the refused notification is delivered again"
    );
    assert_eq!(got[1]["rule"], "high_power");
    assert_eq!(got[1]["charge_point_id"], "CP-AL4");
    assert_eq!(got[1]["state"], "active");
    assert_eq!(got[1]["value"], json!(60000.0));
    assert_eq!(got[2]["event"], "alert_cleared");
    assert_eq!(got[2]["id"], got[1]["id"]);
    assert_eq!(got[2]["state"], "cleared");
    assert!(got[2]["cleared_at"].is_string());
    server.shutdown().await;
    receiver.stop(true).await;
}

#[actix_web::test]
async fn clock_skew_and_energy_register_decrease() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-AL5").await;
    cp.boot().await;
    let mut clock = Clock::new();
    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "T", "meterStart": 1000, "timestamp": clock.next()}),
        )
        .await;
    let txn = start["transactionId"].as_i64().expect("transaction id");
    for value in ["1000", "1500", "200", "100"] {
        let payload = meter_values(
            1,
            Some(txn),
            &clock.next(),
            json!([{"value": value, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]),
        );
        cp.call("MeterValues", payload).await;
    }
    // An hour in the future.
    let future = (Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let payload = meter_values(
        2,
        None,
        &future,
        json!([{"value": "230", "measurand": "Voltage", "unit": "V"}]),
    );
    cp.call("MeterValues", payload).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL5", "active").await.len() == 2
        })
        .await
    );
    let active = alerts(&server, "CP-AL5", "active").await;
    let decrease = of_rule(&active, "energy_register_decrease");
    assert_eq!(
        decrease.len(),
        1,
        "one incident for two decreasing readings: {active:?}"
    );
    assert_eq!(decrease[0]["severity"], "warning");
    assert_eq!(decrease[0]["threshold"], json!(1500.0));
    assert_eq!(decrease[0]["unit"], "Wh");
    let skew = of_rule(&active, "clock_skew");
    assert_eq!(skew.len(), 1);
    assert_eq!(skew[0]["severity"], "warning");
    assert_eq!(skew[0]["connector_id"], 2);
    assert_eq!(skew[0]["threshold"], json!(300.0));
    assert!(
        skew[0]["value"].as_f64().unwrap_or(0.0) > 3500.0,
        "{}",
        skew[0]
    );

    // A sane timestamp clears the skew; a register counting up again clears the decrease.
    let payload = meter_values(
        2,
        None,
        &clock.next(),
        json!([{"value": "231", "measurand": "Voltage", "unit": "V"}]),
    );
    cp.call("MeterValues", payload).await;
    let payload = meter_values(
        1,
        Some(txn),
        &clock.next(),
        json!([{"value": "150", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]),
    );
    cp.call("MeterValues", payload).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL5", "cleared").await.len() == 2
        })
        .await
    );
    assert!(alerts(&server, "CP-AL5", "active").await.is_empty());
    server.shutdown().await;
}

#[actix_web::test]
async fn stale_meter_data_fires_during_a_silent_transaction_and_clears_on_meter_values() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.ocpp.meter_value_sample_interval = 1;
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "CP-AL6").await;
    cp.boot().await;
    let mut clock = Clock::new();
    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 2, "idTag": "T", "meterStart": 0, "timestamp": clock.next()}),
        )
        .await;
    let txn = start["transactionId"].as_i64().expect("transaction id");
    let started = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(6), || async {
            !alerts(&server, "CP-AL6", "active").await.is_empty()
        })
        .await
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "not before 3x the interval"
    );
    let active = alerts(&server, "CP-AL6", "active").await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["rule"], "stale_meter_data");
    assert_eq!(active[0]["severity"], "warning");
    assert_eq!(active[0]["connector_id"], 2);
    assert_eq!(active[0]["threshold"], json!(3.0));

    let payload = meter_values(
        2,
        Some(txn),
        &clock.next(),
        json!([{"value": "10", "measurand": "Energy.Active.Import.Register"}]),
    );
    cp.call("MeterValues", payload).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts(&server, "CP-AL6", "cleared").await.len() == 1
        })
        .await
    );
    assert!(alerts(&server, "CP-AL6", "active").await.is_empty());
    server.shutdown().await;
}
