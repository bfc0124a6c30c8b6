//! Server-initiated calls over real sockets: the admin API asks, the test charge point receives
//! the CALL (checked against the official request schema) and answers with a scripted
//! CALLRESULT or CALLERROR; and the metering profile the server sets at boot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken exchange should stop the test loudly

mod common;

use std::time::Duration;

use common::*;
use ocpp_meter::Config;
use serde_json::{json, Value};

/// A CALL the server made: uniqueId, action, payload (already checked against the schema).
struct ServerCall {
    unique_id: String,
    action: String,
    payload: Value,
}

/// The next CALL from the server; panics on anything else.
async fn next_call(cp: &mut ChargePoint) -> ServerCall {
    let frame = cp.recv().await;
    assert_eq!(
        frame[0],
        json!(2),
        "expected a CALL from the server, got {frame}"
    );
    let call = ServerCall {
        unique_id: frame[1].as_str().expect("uniqueId is a string").to_owned(),
        action: frame[2].as_str().expect("action is a string").to_owned(),
        payload: frame[3].clone(),
    };
    assert_valid(&call.action, &call.payload);
    call
}

/// Answers `call` with a CALLRESULT, after checking the answer against the response schema
/// (so the tests never feed the server an answer a real charge point could not send).
async fn answer(cp: &mut ChargePoint, call: &ServerCall, payload: Value) {
    assert_valid(&format!("{}Response", call.action), &payload);
    cp.send_text(&json!([3, call.unique_id, payload]).to_string())
        .await;
}

/// Whether the server sends no frame within `window` (for "nothing more is sent" checks).
async fn silent_for(cp: &mut ChargePoint, window: Duration) -> bool {
    match tokio::time::timeout(window, cp.recv_message()).await {
        Err(_) => true,
        Ok(Some(tokio_tungstenite::tungstenite::Message::Ping(_))) => true,
        Ok(other) => panic!("expected silence, got {other:?}"),
    }
}

async fn booted(server: &ocpp_meter::RunningServer, id: &str) -> ChargePoint {
    let mut cp = ChargePoint::connect(server, id).await;
    assert_eq!(cp.boot().await["status"], "Accepted");
    cp
}

#[actix_web::test]
async fn trigger_message_reaches_the_charge_point_and_its_status_comes_back() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = booted(&server, "CP-TRIG").await;
    for (message, connector, status) in [
        ("MeterValues", Some(2), "Accepted"),
        ("StatusNotification", None, "Rejected"),
        ("Heartbeat", None, "NotImplemented"),
        ("BootNotification", None, "Accepted"),
    ] {
        let mut body = json!({ "message": message });
        if let Some(c) = connector {
            body["connector_id"] = json!(c);
        }
        let request = spawn_request(
            server.http_addr,
            "POST",
            "/api/v1/charge-points/CP-TRIG/trigger",
            Some(body),
        );
        let call = next_call(&mut cp).await;
        assert_eq!(call.action, "TriggerMessage");
        let mut expected = json!({ "requestedMessage": message });
        if let Some(c) = connector {
            expected["connectorId"] = json!(c);
        }
        assert_eq!(call.payload, expected);
        answer(&mut cp, &call, json!({ "status": status })).await;
        let (code, body) = request.await.unwrap();
        assert_eq!((code, body), (200, json!({ "status": status })));
    }

    // A bad body is refused before anything is sent.
    for bad in [
        json!({"message": "Reset"}),
        json!({"connector_id": 1}),
        json!({"message": "Heartbeat", "extra": 1}),
    ] {
        let (code, body) = spawn_request(
            server.http_addr,
            "POST",
            "/api/v1/charge-points/CP-TRIG/trigger",
            Some(bad),
        )
        .await
        .unwrap();
        assert_eq!(code, 400, "{body}");
        assert!(body["error"].is_string());
    }
    let (code, body) = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-TRIG/configuration",
        Some(json!({"key": "x".repeat(51), "value": "1"})),
    )
    .await
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(silent_for(&mut cp, Duration::from_millis(300)).await);

    // Not connected: 409, whether never seen or gone.
    let (code, body) = spawn_request(
        server.http_addr,
        "POST",
        "/api/v1/charge-points/CP-NOBODY/trigger",
        Some(json!({"message": "Heartbeat"})),
    )
    .await
    .unwrap();
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not connected"));
    drop(cp);
    assert!(
        eventually(Duration::from_secs(5), || async {
            server
                .registry
                .get(&actors::id::ChargePointId::parse("CP-TRIG").unwrap())
                .is_none()
        })
        .await
    );
    let (code, _) = spawn_request(
        server.http_addr,
        "GET",
        "/api/v1/charge-points/CP-TRIG/configuration",
        None,
    )
    .await
    .unwrap();
    assert_eq!(code, 409);
    server.shutdown().await;
}

#[actix_web::test]
async fn configuration_is_read_and_changed_through_the_charge_point() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = booted(&server, "CP-CONF").await;

    let request = spawn_request(
        server.http_addr,
        "GET",
        "/api/v1/charge-points/CP-CONF/configuration?key=MeterValueSampleInterval,Nope",
        None,
    );
    let call = next_call(&mut cp).await;
    assert_eq!(call.action, "GetConfiguration");
    assert_eq!(
        call.payload,
        json!({"key": ["MeterValueSampleInterval", "Nope"]})
    );
    let reported = json!({
        "configurationKey": [{"key": "MeterValueSampleInterval", "readonly": false, "value": "60"}],
        "unknownKey": ["Nope"],
    });
    answer(&mut cp, &call, reported.clone()).await;
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(body, reported);

    // Without keys: every key is asked for (no `key` field at all).
    let request = spawn_request(
        server.http_addr,
        "GET",
        "/api/v1/charge-points/CP-CONF/configuration",
        None,
    );
    let call = next_call(&mut cp).await;
    assert_eq!(call.payload, json!({}));
    answer(
        &mut cp,
        &call,
        json!({"configurationKey": [{"key": "K", "readonly": true}]}),
    )
    .await;
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"configurationKey": [{"key": "K", "readonly": true, "value": null}], "unknownKey": []})
    );

    for status in ["Accepted", "Rejected", "RebootRequired", "NotSupported"] {
        let request = spawn_request(
            server.http_addr,
            "PUT",
            "/api/v1/charge-points/CP-CONF/configuration",
            Some(json!({"key": "HeartbeatInterval", "value": "120"})),
        );
        let call = next_call(&mut cp).await;
        assert_eq!(call.action, "ChangeConfiguration");
        assert_eq!(
            call.payload,
            json!({"key": "HeartbeatInterval", "value": "120"})
        );
        answer(&mut cp, &call, json!({ "status": status })).await;
        let (code, body) = request.await.unwrap();
        assert_eq!((code, body), (200, json!({ "status": status })));
    }
    server.shutdown().await;
}

#[actix_web::test]
async fn call_errors_and_invalid_answers_are_502() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = booted(&server, "CP-ERR").await;

    let request = spawn_request(
        server.http_addr,
        "POST",
        "/api/v1/charge-points/CP-ERR/trigger",
        Some(json!({"message": "MeterValues"})),
    );
    let call = next_call(&mut cp).await;
    cp.send_text(
        &json!([
            4,
            call.unique_id,
            "NotImplemented",
            "no TriggerMessage here",
            {}
        ])
        .to_string(),
    )
    .await;
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 502, "{body}");
    assert_eq!(body["error_code"], "NotImplemented");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("no TriggerMessage here"));

    // An answer the response schema forbids.
    let request = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-ERR/configuration",
        Some(json!({"key": "A", "value": "1"})),
    );
    let call = next_call(&mut cp).await;
    cp.send_text(&json!([3, call.unique_id, {"status": "Maybe"}]).to_string())
        .await;
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("status"));
    assert!(body.get("error_code").is_none());
    // Answers are never answered.
    assert!(silent_for(&mut cp, Duration::from_millis(300)).await);
    server.shutdown().await;
}

#[actix_web::test]
async fn an_unanswered_call_times_out_with_504_and_the_next_one_goes_out() {
    let redis = RedisServer::start();
    let mut config: Config = test_config(&redis);
    config.ocpp.call_timeout_secs = 1;
    let server = start_server(config).await;
    let mut cp = booted(&server, "CP-SLOW").await;

    let request = spawn_request(
        server.http_addr,
        "POST",
        "/api/v1/charge-points/CP-SLOW/trigger",
        Some(json!({"message": "Heartbeat"})),
    );
    let first = next_call(&mut cp).await;
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 504, "{body}");
    assert!(body["error"].as_str().unwrap().contains("did not answer"));

    // The late answer is dropped; the next call gets its own answer.
    answer(&mut cp, &first, json!({"status": "Accepted"})).await;
    let request = spawn_request(
        server.http_addr,
        "POST",
        "/api/v1/charge-points/CP-SLOW/trigger",
        Some(json!({"message": "StatusNotification"})),
    );
    let second = next_call(&mut cp).await;
    assert_ne!(second.unique_id, first.unique_id);
    answer(&mut cp, &second, json!({"status": "Rejected"})).await;
    let (code, body) = request.await.unwrap();
    assert_eq!((code, body), (200, json!({"status": "Rejected"})));
    server.shutdown().await;
}

#[actix_web::test]
async fn concurrent_commands_are_sent_one_after_the_other() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = booted(&server, "CP-SEQ").await;

    let first_request = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-SEQ/configuration",
        Some(json!({"key": "A", "value": "1"})),
    );
    let first = next_call(&mut cp).await;
    let second_request = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-SEQ/configuration",
        Some(json!({"key": "B", "value": "2"})),
    );
    // The second call waits while the first is outstanding.
    assert!(silent_for(&mut cp, Duration::from_millis(500)).await);
    assert!(!second_request.is_finished());
    assert_eq!(first.payload["key"], "A");
    answer(&mut cp, &first, json!({"status": "Accepted"})).await;
    let second = next_call(&mut cp).await;
    assert_eq!(second.payload, json!({"key": "B", "value": "2"}));
    answer(&mut cp, &second, json!({"status": "Rejected"})).await;
    assert_eq!(
        first_request.await.unwrap(),
        (200, json!({"status": "Accepted"}))
    );
    assert_eq!(
        second_request.await.unwrap(),
        (200, json!({"status": "Rejected"}))
    );
    server.shutdown().await;
}

/// A configuration as a charge point reports it.
fn key(key: &str, value: &str) -> Value {
    json!({"key": key, "readonly": false, "value": value})
}

#[actix_web::test]
async fn the_metering_profile_is_set_at_boot_where_it_differs() {
    let redis = RedisServer::start();
    let mut config: Config = test_config(&redis);
    config.ocpp.metering.enabled = true;
    config.ocpp.metering.sample_interval_secs = 30;
    config.ocpp.metering.sampled_data = vec![
        "Energy.Active.Import.Register".into(),
        "Power.Active.Import".into(),
        "Voltage".into(),
    ];
    config.ocpp.metering.clock_aligned_interval_secs = 0;
    config.ocpp.metering.aligned_data = vec!["Energy.Active.Import.Register".into()];
    config.ocpp.metering.stop_txn_sampled_data = vec!["Energy.Active.Import.Register".into()];
    let server = start_server(config).await;

    let mut cp = booted(&server, "CP-METER").await;
    let get = next_call(&mut cp).await;
    assert_eq!(get.action, "GetConfiguration");
    assert_eq!(get.payload, json!({}));
    let reported = json!({"configurationKey": [
        key("MeterValueSampleInterval", "60"),
        key("MeterValuesSampledData", "Energy.Active.Import.Register"),
        key("MeterValuesSampledDataMaxLength", "2"),
        key("ClockAlignedDataInterval", "0"),
        key("MeterValuesAlignedData", ""),
        key("StopTxnSampledData", "Energy.Active.Import.Register"),
    ]});
    answer(&mut cp, &get, reported).await;

    // Only the differing keys, in profile order; the list cut to MaxLength 2.
    let c1 = next_call(&mut cp).await;
    assert_eq!(c1.action, "ChangeConfiguration");
    assert_eq!(
        c1.payload,
        json!({"key": "MeterValueSampleInterval", "value": "30"})
    );
    answer(&mut cp, &c1, json!({"status": "Accepted"})).await;
    let c2 = next_call(&mut cp).await;
    assert_eq!(
        c2.payload,
        json!({"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register,Power.Active.Import"})
    );
    answer(&mut cp, &c2, json!({"status": "Accepted"})).await;
    let c3 = next_call(&mut cp).await;
    assert_eq!(
        c3.payload,
        json!({"key": "MeterValuesAlignedData", "value": "Energy.Active.Import.Register"})
    );
    answer(&mut cp, &c3, json!({"status": "NotSupported"})).await;
    assert!(silent_for(&mut cp, Duration::from_millis(500)).await);

    // What the charge point reported and refused is in Redis, shown by the API.
    let metering = |server: &ocpp_meter::RunningServer| {
        let addr = server.http_addr;
        async move {
            spawn_request(addr, "GET", "/api/v1/charge-points/CP-METER/metering", None)
                .await
                .unwrap()
        }
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            metering(&server).await.1["refused"]["MeterValuesAlignedData"]["status"]
                == "NotSupported"
        })
        .await
    );
    let (code, body) = metering(&server).await;
    assert_eq!(code, 200);
    assert_eq!(body["profile"]["sample_interval_secs"], 30);
    assert_eq!(
        body["reported"]["configuration_key"][0]["key"],
        "MeterValueSampleInterval"
    );
    assert!(redis
        .cli(&["HKEYS", "ocpp:{CP-METER}:metering:refused"])
        .contains("MeterValuesAlignedData"));

    // Next boot: the charge point now has the accepted values; the refused key is not asked
    // again, so nothing but GetConfiguration is sent.
    drop(cp);
    let mut cp = booted(&server, "CP-METER").await;
    let get = next_call(&mut cp).await;
    assert_eq!(get.action, "GetConfiguration");
    answer(
        &mut cp,
        &get,
        json!({"configurationKey": [
            key("MeterValueSampleInterval", "30"),
            key("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import"),
            key("MeterValuesSampledDataMaxLength", "2"),
            key("ClockAlignedDataInterval", "0"),
            key("MeterValuesAlignedData", ""),
            key("StopTxnSampledData", "Energy.Active.Import.Register"),
            key("Marker", "second boot"),
        ]}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            metering(&server).await.1["reported"]["configuration_key"][6]["key"] == "Marker"
        })
        .await
    );
    assert!(silent_for(&mut cp, Duration::from_millis(500)).await);

    // A changed profile asks again, and only for what changed.
    let (code, body) = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-METER/metering",
        Some(json!({"aligned_data": ["Power.Active.Import"], "sample_interval_secs": 30})),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["profile"]["aligned_data"],
        json!(["Power.Active.Import"])
    );
    let (code, _) = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-METER/metering",
        Some(json!({"aligned_data": ["Nonsense"]})),
    )
    .await
    .unwrap();
    assert_eq!(code, 400);
    drop(cp);
    let mut cp = booted(&server, "CP-METER").await;
    let get = next_call(&mut cp).await;
    answer(
        &mut cp,
        &get,
        json!({"configurationKey": [
            key("MeterValueSampleInterval", "30"),
            key("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import"),
            key("MeterValuesSampledDataMaxLength", "2"),
            key("ClockAlignedDataInterval", "0"),
            key("MeterValuesAlignedData", ""),
            key("StopTxnSampledData", "Energy.Active.Import.Register"),
        ]}),
    )
    .await;
    let change = next_call(&mut cp).await;
    assert_eq!(
        change.payload,
        json!({"key": "MeterValuesAlignedData", "value": "Power.Active.Import"})
    );
    answer(&mut cp, &change, json!({"status": "Accepted"})).await;
    assert!(silent_for(&mut cp, Duration::from_millis(500)).await);
    assert!(
        eventually(Duration::from_secs(5), || async {
            metering(&server).await.1["refused"] == json!({})
        })
        .await
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn the_stale_data_alert_follows_the_interval_the_charge_point_accepted() {
    let redis = RedisServer::start();
    let mut config: Config = test_config(&redis);
    // The configured assumption would wait 3 minutes; the charge point accepts 1 s.
    config.ocpp.meter_value_sample_interval = 60;
    config.ocpp.metering.enabled = true;
    config.ocpp.metering.sample_interval_secs = 1;
    config.ocpp.metering.sampled_data = vec!["Energy.Active.Import.Register".into()];
    config.ocpp.metering.clock_aligned_interval_secs = 0;
    config.ocpp.metering.aligned_data = vec![];
    config.ocpp.metering.stop_txn_sampled_data = vec![];
    let server = start_server(config).await;
    let mut cp = booted(&server, "CP-STALE").await;
    let read = next_call(&mut cp).await;
    answer(
        &mut cp,
        &read,
        json!({"configurationKey": [
            key("MeterValueSampleInterval", "60"),
            key("MeterValuesSampledData", "Energy.Active.Import.Register"),
            key("ClockAlignedDataInterval", "0"),
            key("MeterValuesAlignedData", ""),
            key("StopTxnSampledData", ""),
        ]}),
    )
    .await;
    let change = next_call(&mut cp).await;
    assert_eq!(
        change.payload,
        json!({"key": "MeterValueSampleInterval", "value": "1"})
    );
    answer(&mut cp, &change, json!({"status": "Accepted"})).await;
    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "T", "meterStart": 0,
                   "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()}),
        )
        .await;
    assert!(start["transactionId"].is_i64());
    let stale = || async {
        let (_, body) = get(&server, "/api/v1/alerts?charge_point=CP-STALE&state=active").await;
        body["alerts"]
            .as_array()
            .and_then(|a| a.first().cloned())
            .filter(|a| a["rule"] == "stale_meter_data")
    };
    assert!(
        eventually(Duration::from_secs(10), || async {
            stale().await.is_some()
        })
        .await
    );
    assert_eq!(stale().await.unwrap()["threshold"], json!(3.0));
    server.shutdown().await;
}

/// Read, edit, write back (issue 13's API round trip): the document `GET …/metering` gives,
/// with its read-only `charge_point_id`, `enabled`, `profile`, `reported` and `refused` and the
/// override nested under `override`, is accepted by the `PUT` of the same route, and the edit
/// made under `override` is what gets stored. The flat body stays the documented one; both at
/// once, or an unknown field, is a 400 that names the field.
#[actix_web::test]
async fn a_metering_document_read_edited_and_written_back_is_accepted() {
    let redis = RedisServer::start();
    let mut config: Config = test_config(&redis);
    config.ocpp.metering.enabled = true;
    config.ocpp.metering.sample_interval_secs = 60;
    let server = start_server(config).await;
    let path = "/api/v1/charge-points/CP-ROUND/metering";
    let put = |body: Value| spawn_request(server.http_addr, "PUT", path, Some(body));

    let (code, body) = put(json!({"sample_interval_secs": 30})).await.unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, mut doc) = get(&server, path).await;
    assert_eq!(code, 200, "{doc}");
    for field in [
        "charge_point_id",
        "enabled",
        "profile",
        "reported",
        "refused",
    ] {
        assert!(doc.get(field).is_some(), "GET lacks {field}: {doc}");
    }
    assert_eq!(doc["override"], json!({"sample_interval_secs": 30}));

    doc["override"]["sample_interval_secs"] = json!(15);
    doc["override"]["aligned_data"] = json!(["Power.Active.Import"]);
    let (code, body) = put(doc.clone()).await.unwrap();
    assert_eq!(code, 200, "the GET document was refused: {body}");
    assert_eq!(body["profile"]["sample_interval_secs"], 15);
    let (_, stored) = get(&server, path).await;
    assert_eq!(
        stored["override"],
        json!({"sample_interval_secs": 15, "aligned_data": ["Power.Active.Import"]}),
        "the edit under \"override\" was not stored"
    );
    assert_eq!(
        stored["profile"]["aligned_data"],
        json!(["Power.Active.Import"])
    );

    // The document of another charge point written here sets this one (its id is read-only).
    let mut copied = stored.clone();
    copied["charge_point_id"] = json!("CP-OTHER");
    let (code, body) = put(copied).await.unwrap();
    assert_eq!(code, 200, "{body}");

    let mut both = stored.clone();
    both["sample_interval_secs"] = json!(10);
    let (code, body) = put(both).await.unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("sample_interval_secs"),
        "{body}"
    );
    let mut typo = stored.clone();
    typo["override"]["sample_intreval_secs"] = json!(10);
    let (code, body) = put(typo).await.unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("sample_intreval_secs"),
        "{body}"
    );
    let (code, body) = put(json!({"sample_intreval_secs": 10})).await.unwrap();
    assert_eq!(code, 400, "{body}");
    let (_, after) = get(&server, path).await;
    assert_eq!(
        after["override"], stored["override"],
        "a refused PUT changed the override"
    );
    server.shutdown().await;
}
