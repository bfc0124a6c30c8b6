//! OCPP 2.0.1 over real sockets against a private redis-server: subprotocol negotiation, a
//! whole 2.0.1 charging session read back through the same admin API as the same session over
//! 1.6 (and found equal), malformed 2.0.1 frames answered with the 2.0.1 error codes, offline
//! events kept out of the live alerts, retried events stored once, the station's transaction
//! id surviving a restart, Basic auth on a 2.0.1 connection, and a mixed fleet in one run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::time::Duration;

use base64::Engine;
use common::*;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const V201: &str = "ocpp2.0.1";

/// Connects as `id` offering only ocpp2.0.1, and checks the server chose it.
async fn connect_201(server: &RunningServer, id: &str) -> ChargePoint {
    let url = format!("ws://{}/ocpp/{id}", server.ws_addr);
    let cp = connect_with(&url, Some(V201)).await.expect("accepted");
    assert_eq!(cp.protocol.as_deref(), Some(V201));
    cp
}

/// Sends a 2.0.1 CALL, expects a CALLRESULT valid against `<action>Response.json` (2.0.1).
async fn call_201(cp: &mut ChargePoint, action: &str, payload: Value) -> Value {
    let answer = cp.call_frame(action, payload).await;
    assert_eq!(answer[0], json!(3), "CALLRESULT to {action}: {answer}");
    assert_valid_201(&format!("{action}Response"), &answer[2]);
    answer[2].clone()
}

/// Timestamps `secs` after a base 30 minutes ago.
fn clock() -> impl Fn(i64) -> String {
    let base = chrono::Utc::now() - chrono::Duration::minutes(30);
    move |secs: i64| {
        (base + chrono::Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }
}

/// A TransactionEvent payload; `extra` fields are merged in.
fn event(kind: &str, txn: &str, seq: i64, at: &str, trigger: &str, extra: Value) -> Value {
    let mut payload = json!({
        "eventType": kind, "timestamp": at, "triggerReason": trigger, "seqNo": seq,
        "transactionInfo": {"transactionId": txn},
    });
    for (key, value) in extra.as_object().unwrap() {
        if key == "transactionInfo" {
            for (k, v) in value.as_object().unwrap() {
                payload["transactionInfo"][k] = v.clone();
            }
        } else {
            payload[key] = value.clone();
        }
    }
    payload
}

async fn boot_201(cp: &mut ChargePoint) {
    let boot = call_201(
        cp,
        "BootNotification",
        json!({"reason": "PowerUp", "chargingStation": {"vendorName": "TestVendor", "model": "TM-1", "firmwareVersion": "1.2.3"}}),
    )
    .await;
    assert_eq!(boot["status"], "Accepted");
    assert_eq!(boot["interval"], 300);
}

async fn samples(server: &RunningServer, id: &str, from: &str, to: &str) -> Vec<Value> {
    let (status, body) = get(
        server,
        &format!("/api/v1/charge-points/{id}/meter-values?from={from}&to={to}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["samples"].as_array().expect("samples").clone()
}

/// The charge point's transactions, newest first.
async fn transactions(server: &RunningServer, id: &str) -> Vec<Value> {
    let (status, body) = get(server, &format!("/api/v1/charge-points/{id}/transactions")).await;
    assert_eq!(status, 200, "{body}");
    body["transactions"].as_array().cloned().unwrap_or_default()
}

async fn alerts(server: &RunningServer, cp: &str, state: &str) -> Vec<Value> {
    let (status, body) = get(
        server,
        &format!("/api/v1/alerts?charge_point={cp}&state={state}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["alerts"].as_array().cloned().unwrap_or_default()
}

/// Samples without the fields that name the session (the integer transaction ids differ).
fn comparable(samples: &[Value]) -> Vec<Value> {
    samples
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.as_object_mut().unwrap().remove("transaction_id");
            s
        })
        .collect()
}

#[actix_web::test]
async fn a_2_0_1_session_reads_back_like_the_same_session_over_1_6() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.buffer.rollup_interval_secs = 1;
    let server = start_server(config).await;
    let at = clock();

    // The 1.6 reference session.
    let mut cp16 = ChargePoint::connect(&server, "CP-16").await;
    cp16.boot().await;
    cp16.call(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "NoError", "status": "Charging"}),
    )
    .await;
    let start = cp16
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": at(0)}),
        )
        .await;
    let txn16 = start["transactionId"].as_i64().unwrap();
    let begin = meter_values(
        1,
        Some(txn16),
        &at(0),
        json!([{"value": "1000", "context": "Transaction.Begin"}]),
    );
    cp16.call("MeterValues", begin).await;
    let periodic = meter_values(
        1,
        Some(txn16),
        &at(10),
        json!([
            {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
            {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"}
        ]),
    );
    cp16.call("MeterValues", periodic).await;
    cp16.call(
        "StopTransaction",
        json!({"transactionId": txn16, "meterStop": 1600, "timestamp": at(300), "idTag": "TAG1", "reason": "Local",
            "transactionData": [{"timestamp": at(300), "sampledValue": [{"value": "1600", "context": "Transaction.End"}]}]}),
    )
    .await;

    // The same session from a 2.0.1 station.
    let mut cp = connect_201(&server, "CP-201").await;
    boot_201(&mut cp).await;
    let status = call_201(
        &mut cp,
        "StatusNotification",
        json!({"timestamp": at(0), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
    )
    .await;
    assert_eq!(status, json!({}));
    let auth = call_201(
        &mut cp,
        "Authorize",
        json!({"idToken": {"idToken": "TAG1", "type": "ISO14443"}}),
    )
    .await;
    assert_eq!(auth["idTokenInfo"]["status"], "Accepted");
    let txn = "0b5c7b8e-2d7c-4a57-9a8e-1f0c2d3e4f50";
    let started = call_201(
        &mut cp,
        "TransactionEvent",
        event(
            "Started",
            txn,
            0,
            &at(0),
            "Authorized",
            json!({"evse": {"id": 1, "connectorId": 1}, "idToken": {"idToken": "TAG1", "type": "ISO14443"},
                "transactionInfo": {"chargingState": "Charging"},
                "meterValue": [{"timestamp": at(0), "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}]}),
        ),
    )
    .await;
    assert_eq!(started["idTokenInfo"]["status"], "Accepted");
    let updated = call_201(
        &mut cp,
        "TransactionEvent",
        event(
            "Updated",
            txn,
            1,
            &at(10),
            "MeterValuePeriodic",
            json!({"meterValue": [{"timestamp": at(10), "sampledValue": [
                {"value": 1.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "kWh"}},
                {"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 3}},
                {"value": 230.1, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
                {"value": 16, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}}
            ]}]}),
        ),
    )
    .await;
    assert_eq!(updated, json!({}));
    let ended = call_201(
        &mut cp,
        "TransactionEvent",
        event(
            "Ended",
            txn,
            2,
            &at(300),
            "EVDeparted",
            json!({"idToken": {"idToken": "TAG1", "type": "ISO14443"}, "transactionInfo": {"stoppedReason": "Local"},
                "meterValue": [{"timestamp": at(300), "sampledValue": [{"value": 1600, "context": "Transaction.End"}]}]}),
        ),
    )
    .await;
    assert_eq!(ended["idTokenInfo"]["status"], "Accepted");
    call_201(&mut cp, "Heartbeat", json!({})).await;

    // Meter values: the same samples, the 2.0.1 ones under the integer id of the record.
    let (from, to) = (at(-60), at(600));
    let readings16 = samples(&server, "CP-16", &from, &to).await;
    let readings201 = samples(&server, "CP-201", &from, &to).await;
    assert_eq!(readings201.len(), 6, "{readings201:?}");
    assert_eq!(comparable(&readings201), comparable(&readings16));

    // Transactions: one record each, equal but for the ids.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let list = transactions(&server, "CP-201").await;
            list.len() == 1 && list[0]["state"] == "stopped"
        })
        .await,
        "{:?}",
        transactions(&server, "CP-201").await
    );
    let list = transactions(&server, "CP-201").await;
    let record201 = list[0].clone();
    assert_eq!(record201["station_transaction_id"], txn);
    let id201 = record201["transaction_id"].as_i64().unwrap();
    assert!(readings201.iter().all(|s| s["transaction_id"] == id201));
    let (_, record16) = get(&server, &format!("/api/v1/transactions/{txn16}")).await;
    assert_eq!(record16.get("station_transaction_id"), None);
    for field in [
        "connector_id",
        "id_tag",
        "meter_start",
        "start_time",
        "meter_stop",
        "stop_time",
        "stop_id_tag",
        "stop_reason",
        "state",
        "energy_wh",
    ] {
        assert_eq!(record201[field], record16[field], "{field}");
    }
    assert_eq!(record201["energy_wh"], 600);

    // Hourly roll-ups: the same buckets.
    let query = format!("period=hour&from={}&to={}", at(-3600), at(3600));
    let buckets = |cp: &'static str| {
        let path = format!("/api/v1/charge-points/{cp}/aggregates?{query}");
        let server = &server;
        async move { get(server, &path).await.1["buckets"].clone() }
    };
    let mut same = false;
    for _ in 0..100 {
        let (agg16, agg201) = (buckets("CP-16").await, buckets("CP-201").await);
        if agg16.as_array().is_some_and(|b| !b.is_empty()) && agg16 == agg201 {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        same,
        "1.6 {} vs 2.0.1 {}",
        buckets("CP-16").await,
        buckets("CP-201").await
    );

    // The charge point document: identity from the 2.0.1 boot, status on EVSE 1.
    let (_, doc) = get(&server, "/api/v1/charge-points/CP-201").await;
    assert_eq!(doc["vendor"], "TestVendor");
    assert_eq!(doc["firmware_version"], "1.2.3");
    assert_eq!(doc["connectors"][0]["connector_id"], 1);
    assert_eq!(doc["connectors"][0]["status"], "Occupied");
    assert_eq!(doc["ocpp_version"], V201);
    let (_, doc16) = get(&server, "/api/v1/charge-points/CP-16").await;
    assert_eq!(doc16["ocpp_version"], "ocpp1.6");
    server.shutdown().await;
}

#[actix_web::test]
async fn the_first_enabled_offer_is_chosen() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let url = format!("ws://{}/ocpp/CP-NEG", server.ws_addr);
    for (offer, chosen) in [
        (Some("ocpp2.0.1, ocpp1.6"), "ocpp2.0.1"),
        (Some("ocpp1.6, ocpp2.0.1"), "ocpp1.6"),
        (Some("ocpp2.1, ocpp2.0.1"), "ocpp2.0.1"),
        (None, "ocpp1.6"),
    ] {
        let mut cp = connect_with(&url, offer).await.expect("accepted");
        if offer.is_some() {
            assert_eq!(cp.protocol.as_deref(), Some(chosen), "{offer:?}");
        }
        // The session speaks what was chosen: a 1.6 BootNotification is refused by 2.0.1.
        let answer = cp
            .call_frame(
                "BootNotification",
                json!({"chargePointVendor": "V", "chargePointModel": "M"}),
            )
            .await;
        let expected = if chosen == V201 { 4 } else { 3 };
        assert_eq!(answer[0], json!(expected), "{offer:?}: {answer}");
    }
    assert_eq!(connect_with(&url, Some("ocpp1.5")).await.err(), Some(400));
    server.shutdown().await;

    // Held to one version by ocpp.protocols.
    let mut config = test_config(&redis);
    config.ocpp.protocols = vec!["ocpp1.6".into()];
    let server = start_server(config).await;
    let url = format!("ws://{}/ocpp/CP-NEG", server.ws_addr);
    let cp = connect_with(&url, Some("ocpp2.0.1, ocpp1.6"))
        .await
        .unwrap();
    assert_eq!(cp.protocol.as_deref(), Some("ocpp1.6"));
    assert_eq!(connect_with(&url, Some(V201)).await.err(), Some(400));
    drop(cp);
    server.shutdown().await;

    let mut config = test_config(&redis);
    config.ocpp.protocols = vec![V201.into()];
    let server = start_server(config).await;
    let url = format!("ws://{}/ocpp/CP-NEG", server.ws_addr);
    assert_eq!(
        connect_with(&url, None).await.err(),
        Some(400),
        "no offer means 1.6"
    );
    assert_eq!(connect_with(&url, Some("ocpp1.6")).await.err(), Some(400));
    let cp = connect_with(&url, Some("ocpp1.6, ocpp2.0.1"))
        .await
        .unwrap();
    assert_eq!(cp.protocol.as_deref(), Some(V201));
    drop(cp);
    server.shutdown().await;
}

/// Sends `text`, expects a CALLERROR with `code` for `unique_id`, and checks the session lives.
async fn expect_error(cp: &mut ChargePoint, text: &str, unique_id: &str, code: &str) -> String {
    cp.send_text(text).await;
    let answer = cp.recv().await;
    let parts = answer.as_array().unwrap();
    assert_eq!(parts.len(), 5, "{answer}");
    assert_eq!(parts[0], json!(4), "{answer}");
    assert_eq!(parts[1], json!(unique_id), "{answer}");
    assert_eq!(parts[2], json!(code), "{text} -> {answer}");
    assert!(parts[4].is_object(), "{answer}");
    let heartbeat = call_201(cp, "Heartbeat", json!({})).await;
    assert!(heartbeat["currentTime"].is_string());
    parts[3].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn malformed_2_0_1_frames_get_2_0_1_error_codes() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = connect_201(&server, "CP-BAD").await;
    expect_error(
        &mut cp,
        r#"[2,"b1","Heartbeat",{"#,
        "b1",
        "RpcFrameworkError",
    )
    .await;
    expect_error(&mut cp, r#"{"not":"an array"}"#, "-1", "RpcFrameworkError").await;
    expect_error(
        &mut cp,
        r#"[2,17,"Heartbeat",{}]"#,
        "-1",
        "RpcFrameworkError",
    )
    .await;
    expect_error(
        &mut cp,
        r#"[7,"b2","Heartbeat",{}]"#,
        "b2",
        "MessageTypeNotSupported",
    )
    .await;
    cp.send_message(tokio_tungstenite::tungstenite::Message::binary(vec![
        0xff, 0xfe, 0x5b,
    ]))
    .await;
    let answer = cp.recv().await;
    assert_eq!(answer[2], "RpcFrameworkError", "{answer}");
    assert_eq!(answer[1], "-1", "{answer}");
    expect_error(
        &mut cp,
        r#"[2,"b3","Heartbeat",[]]"#,
        "b3",
        "FormatViolation",
    )
    .await;
    let description = expect_error(
        &mut cp,
        r#"[2,"b4","StatusNotification",{"timestamp":"2024-05-01T10:00:00Z","connectorStatus":"Available","evseId":1}]"#,
        "b4",
        "OccurrenceConstraintViolation",
    )
    .await;
    assert!(description.starts_with("connectorId"), "{description}");
    let description = expect_error(
        &mut cp,
        r#"[2,"b5","TransactionEvent",{"eventType":"Started","timestamp":"2024-05-01T10:00:00Z","triggerReason":"Authorized","seqNo":"zero","transactionInfo":{"transactionId":"T"}}]"#,
        "b5",
        "TypeConstraintViolation",
    )
    .await;
    assert!(description.starts_with("seqNo"), "{description}");
    let description = expect_error(
        &mut cp,
        r#"[2,"b6","TransactionEvent",{"eventType":"Begun","timestamp":"2024-05-01T10:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"T"}}]"#,
        "b6",
        "PropertyConstraintViolation",
    )
    .await;
    assert!(description.starts_with("eventType"), "{description}");
    expect_error(
        &mut cp,
        r#"[2,"b7","NotifyReport",{}]"#,
        "b7",
        "NotImplemented",
    )
    .await;
    expect_error(&mut cp, r#"[2,"b8","Reset",{}]"#, "b8", "NotSupported").await;
    expect_error(
        &mut cp,
        r#"[2,"b9","StartTransaction",{}]"#,
        "b9",
        "NotImplemented",
    )
    .await;
    // The refusals are counted under the 2.0.1 spelling.
    let (_, _) = get(&server, "/health").await;
    let metrics = awc::Client::default()
        .get(format!("http://{}/metrics", server.http_addr))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(r#"action="malformed",result="RpcFrameworkError""#),
        "{metrics}"
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn offline_events_are_stored_but_raise_no_live_alert() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = connect_201(&server, "CP-OFF").await;
    boot_201(&mut cp).await;
    let now = chrono::Utc::now();
    let iso = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let hours_ago = iso(now - chrono::Duration::hours(2));
    let power = |kw: f64| json!([{"value": kw, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}}]);
    // Two hours old (clock skew) and over the 50 kW default: both would alert if judged live.
    call_201(
        &mut cp,
        "TransactionEvent",
        event(
            "Started",
            "OFF-1",
            0,
            &hours_ago,
            "CablePluggedIn",
            json!({"offline": true, "evse": {"id": 1}, "meterValue": [{"timestamp": hours_ago, "sampledValue": power(70.0)}]}),
        ),
    )
    .await;
    // Online again: 1 kW (would clear an alert), then 60 kW (raises one: the marker).
    for (seq, kw, secs) in [(1, 1.0, 2), (2, 60.0, 1)] {
        let at = iso(now - chrono::Duration::seconds(secs));
        call_201(
            &mut cp,
            "TransactionEvent",
            event(
                "Updated",
                "OFF-1",
                seq,
                &at,
                "MeterValuePeriodic",
                json!({"meterValue": [{"timestamp": at, "sampledValue": power(kw)}]}),
            ),
        )
        .await;
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            !alerts(&server, "CP-OFF", "active").await.is_empty()
        })
        .await
    );
    let all = alerts(&server, "CP-OFF", "all").await;
    assert_eq!(all.len(), 1, "only the online reading alerted: {all:?}");
    assert_eq!(all[0]["rule"], "high_power");
    // The offline reading is stored under its own timestamp.
    let stored = samples(
        &server,
        "CP-OFF",
        &iso(now - chrono::Duration::hours(3)),
        &iso(now + chrono::Duration::minutes(1)),
    )
    .await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(stored[0]["value"], 70000.0);
    assert_eq!(
        stored[0]["timestamp"].as_str().unwrap()[..19],
        hours_ago[..19]
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn retried_events_store_nothing_twice_and_the_mapping_survives_a_restart() {
    let redis = RedisServer::start();
    let config = test_config(&redis);
    let server = start_server(config.clone()).await;
    let at = clock();
    let mut cp = connect_201(&server, "CP-RETRY").await;
    boot_201(&mut cp).await;
    let started = event(
        "Started",
        "R-1",
        0,
        &at(0),
        "CablePluggedIn",
        json!({"evse": {"id": 2}, "meterValue": [{"timestamp": at(0), "sampledValue": [{"value": 500}]}]}),
    );
    let updated = event(
        "Updated",
        "R-1",
        1,
        &at(10),
        "MeterValuePeriodic",
        json!({"meterValue": [{"timestamp": at(10), "sampledValue": [{"value": 900}, {"value": 11, "measurand": "Power.Active.Import"}]}]}),
    );
    for _ in 0..2 {
        call_201(&mut cp, "TransactionEvent", started.clone()).await;
        call_201(&mut cp, "TransactionEvent", updated.clone()).await;
    }
    let (from, to) = (at(-60), at(600));
    assert_eq!(samples(&server, "CP-RETRY", &from, &to).await.len(), 3);
    assert!(
        eventually(Duration::from_secs(5), || async {
            !transactions(&server, "CP-RETRY").await.is_empty()
        })
        .await
    );
    let list = transactions(&server, "CP-RETRY").await;
    assert_eq!(
        list.len(),
        1,
        "a retried Started opens nothing new: {list:?}"
    );
    let id = list[0]["transaction_id"].clone();
    assert_eq!(list[0]["meter_start"], 500);
    assert_eq!(list[0]["connector_id"], 2);
    drop(cp);
    server.shutdown().await;

    // Another process: the station's id still names the same record.
    let server = start_server(config).await;
    let mut cp = connect_201(&server, "CP-RETRY").await;
    call_201(
        &mut cp,
        "TransactionEvent",
        event(
            "Ended",
            "R-1",
            2,
            &at(60),
            "EVDeparted",
            json!({"transactionInfo": {"stoppedReason": "EVDisconnected"}}),
        ),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            let list = transactions(&server, "CP-RETRY").await;
            list.len() == 1 && list[0]["state"] == "stopped"
        })
        .await
    );
    let list = transactions(&server, "CP-RETRY").await;
    assert_eq!(list[0]["transaction_id"], id);
    assert_eq!(list[0]["stop_reason"], "EVDisconnected");
    // No register in the Ended event and none seen by this session: meter_start, so 0 Wh
    // rather than a guess.
    assert_eq!(list[0]["meter_stop"], 500);
    // An Updated for a transaction never seen opens it implicitly (started while offline).
    call_201(
        &mut cp,
        "TransactionEvent",
        event(
            "Updated",
            "R-2",
            5,
            &at(100),
            "MeterValuePeriodic",
            json!({"evse": {"id": 1}, "meterValue": [{"timestamp": at(100), "sampledValue": [{"value": 42}]}]}),
        ),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            transactions(&server, "CP-RETRY").await.len() == 2
        })
        .await
    );
    let list = transactions(&server, "CP-RETRY").await;
    let implicit = list
        .iter()
        .find(|t| t["station_transaction_id"] == "R-2")
        .unwrap();
    assert_eq!(implicit["state"], "active");
    assert_eq!(implicit["meter_start"], 42);
    assert_eq!(implicit["id_tag"], "");
    // No token, so no idTag index entry (an empty tag would make the key `ocpp:id-tag::txns`).
    assert_eq!(redis.cli(&["EXISTS", "ocpp:id-tag::txns"]).trim(), "0");
    assert!(
        redis
            .cli(&["ZCARD", "ocpp:txns"])
            .trim()
            .parse::<u64>()
            .unwrap()
            >= 2
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn basic_auth_guards_a_2_0_1_upgrade_like_a_1_6_one() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let password = "s3cret-passw0rd-for-cp";
    let (status, _) = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-SEC/password",
        Some(json!({"password": password})),
    )
    .await
    .unwrap();
    assert_eq!(status, 204);
    let url = format!("ws://{}/ocpp/CP-SEC", server.ws_addr);
    let request = |credentials: Option<&str>| {
        let mut request = url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(V201));
        if let Some(password) = credentials {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("CP-SEC:{password}"));
            request.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
            );
        }
        request
    };
    let refused = connect_request(request(None), None).await.err().unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let refused = connect_request(request(Some("wrong-password-000000")), None)
        .await
        .err()
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let mut cp = connect_request(request(Some(password)), None)
        .await
        .unwrap_or_else(|r| panic!("refused with {}", r.status()));
    assert_eq!(cp.protocol.as_deref(), Some(V201));
    boot_201(&mut cp).await;
    server.shutdown().await;
}

#[actix_web::test]
async fn a_mixed_fleet_stores_every_answered_reading() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let at = clock();
    const READINGS: i64 = 20;
    let mut tasks = Vec::new();
    for n in 0..6 {
        let ws_addr = server.ws_addr;
        let at = at(0);
        let base = chrono::DateTime::parse_from_rfc3339(&at).unwrap();
        tasks.push(actix_web::rt::spawn(async move {
            let v201 = n % 2 == 0;
            let id = format!("CP-MIX-{n}");
            let url = format!("ws://{ws_addr}/ocpp/{id}");
            let offer = if v201 { "ocpp2.0.1, ocpp1.6" } else { "ocpp1.6" };
            let mut cp = connect_with(&url, Some(offer)).await.unwrap();
            let ts = |i: i64| {
                (base + chrono::Duration::seconds(i))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            };
            for i in 0..READINGS {
                let answer = if v201 {
                    let kind = if i == 0 { "Started" } else { "Updated" };
                    cp.call_frame(
                        "TransactionEvent",
                        event(kind, &format!("{id}-T"), i, &ts(i), "MeterValuePeriodic",
                            json!({"evse": {"id": 1}, "meterValue": [{"timestamp": ts(i), "sampledValue": [
                                {"value": 1000 + i, "measurand": "Energy.Active.Import.Register"},
                                {"value": 230, "measurand": "Voltage", "phase": "L1-N"}]}]})),
                    )
                    .await
                } else {
                    cp.call_frame(
                        "MeterValues",
                        meter_values(1, None, &ts(i), json!([
                            {"value": (1000 + i).to_string(), "measurand": "Energy.Active.Import.Register"},
                            {"value": "230", "measurand": "Voltage", "phase": "L1-N"}])),
                    )
                    .await
                };
                assert_eq!(answer[0], json!(3), "{id}: {answer}");
            }
            (id, cp)
        }));
    }
    let mut connected = Vec::new();
    for task in tasks {
        connected.push(task.await.unwrap());
    }
    for (id, _) in &connected {
        let stored = samples(&server, id, &at(-60), &at(600)).await;
        assert_eq!(stored.len() as i64, READINGS * 2, "{id}");
        let registers: Vec<f64> = stored
            .iter()
            .filter(|s| s["measurand"] == "Energy.Active.Import.Register")
            .map(|s| s["value"].as_f64().unwrap())
            .collect();
        let expected: Vec<f64> = (0..READINGS).map(|i| (1000 + i) as f64).collect();
        assert_eq!(registers, expected, "{id}");
    }
    server.shutdown().await;
}

#[actix_web::test]
async fn every_other_station_message_is_answered_over_the_socket() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let at = clock();
    let mut cp = connect_201(&server, "CP-MSG").await;
    boot_201(&mut cp).await;
    let answered = [
        (
            "MeterValues",
            json!({"evseId": 0, "meterValue": [{"timestamp": at(0), "sampledValue": [
                {"value": 12.5, "measurand": "Energy.Active.Net", "unitOfMeasure": {"unit": "kWh", "multiplier": -1}},
                {"value": 49.98, "measurand": "Frequency"}]}]}),
        ),
        (
            "NotifyEvent",
            json!({"generatedAt": at(1), "seqNo": 0, "eventData": [{"eventId": 1, "timestamp": at(1),
                "trigger": "Alerting", "actualValue": "true", "eventNotificationType": "HardWiredMonitor",
                "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Problem"}}]}),
        ),
        (
            "SecurityEventNotification",
            json!({"type": "FirmwareUpdated", "timestamp": at(2)}),
        ),
        (
            "FirmwareStatusNotification",
            json!({"status": "Installed", "requestId": 1}),
        ),
        ("LogStatusNotification", json!({"status": "Uploading"})),
    ];
    for (action, payload) in answered {
        assert_eq!(
            call_201(&mut cp, action, payload).await,
            json!({}),
            "{action}"
        );
    }
    let data = call_201(
        &mut cp,
        "DataTransfer",
        json!({"vendorId": "com.example", "data": [1, {"a": null}]}),
    )
    .await;
    assert_eq!(data["status"], "UnknownVendorId");
    // The station's main meter (EVSE 0) is stored as connector 0, multiplier applied.
    let stored = samples(&server, "CP-MSG", &at(-60), &at(60)).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let of = |m: &str| stored.iter().find(|s| s["measurand"] == m).unwrap().clone();
    let net = of("Energy.Active.Net");
    assert_eq!(net["connector_id"], 0);
    assert_eq!(net["value"], 1250.0);
    assert_eq!(net["unit"], "Wh");
    assert_eq!(of("Frequency")["unit"], "Hz");
    server.shutdown().await;
}
