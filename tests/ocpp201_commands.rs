//! Server-initiated calls to an OCPP 2.0.1 charging station over a real WebSocket: the admin
//! API's trigger and configuration routes and the boot metering run reach the station as
//! TriggerMessage, GetVariables and SetVariables (each CALL checked against the official 2.0.1
//! request schema), and the API answers from the station's 2.0.1 responses exactly as it does
//! for a 1.6 charge point (docs/ocpp201-calls.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken exchange should stop the test loudly

mod common;

use std::time::Duration;

use common::*;
use ocpp_meter::Config;
use serde_json::{json, Value};

/// A CALL the server made: uniqueId, action, payload (already checked against the schema).
struct Call {
    unique_id: String,
    action: String,
    payload: Value,
}

/// The next CALL from the server, checked against its 2.0.1 request schema.
async fn next_call(cs: &mut ChargePoint) -> Call {
    let frame = cs.recv().await;
    assert_eq!(frame[0], json!(2), "expected a CALL, got {frame}");
    let call = Call {
        unique_id: frame[1].as_str().expect("uniqueId").to_owned(),
        action: frame[2].as_str().expect("action").to_owned(),
        payload: frame[3].clone(),
    };
    assert_valid_201(&format!("{}Request", call.action), &call.payload);
    call
}

/// Answers `call` with a CALLRESULT valid against its 2.0.1 response schema.
async fn answer(cs: &mut ChargePoint, call: &Call, payload: Value) {
    assert_valid_201(&format!("{}Response", call.action), &payload);
    cs.send_text(&json!([3, call.unique_id, payload]).to_string())
        .await;
}

/// Whether the server sends no frame within `window`.
async fn silent_for(cs: &mut ChargePoint, window: Duration) -> bool {
    match tokio::time::timeout(window, cs.recv_message()).await {
        Err(_) => true,
        Ok(Some(tokio_tungstenite::tungstenite::Message::Ping(_))) => true,
        Ok(other) => panic!("expected silence, got {other:?}"),
    }
}

/// Connects as `id` offering only `ocpp2.0.1` and boots with a 2.0.1 BootNotification.
async fn booted_201(server: &ocpp_meter::RunningServer, id: &str) -> ChargePoint {
    let url = format!("ws://{}/ocpp/{}", server.ws_addr, id);
    let mut cs = connect_with(&url, Some("ocpp2.0.1"))
        .await
        .expect("connection accepted");
    assert_eq!(cs.protocol.as_deref(), Some("ocpp2.0.1"));
    let boot = json!({
        "reason": "PowerUp",
        "chargingStation": {"model": "TM-201", "vendorName": "TestVendor"},
    });
    assert_valid_201("BootNotificationRequest", &boot);
    let frame = cs.call_frame("BootNotification", boot).await;
    assert_eq!(frame[0], json!(3), "BootNotification answered {frame}");
    assert_valid_201("BootNotificationResponse", &frame[2]);
    assert_eq!(frame[2]["status"], "Accepted");
    cs
}

/// One GetVariableResult echoing a `getVariableData` item.
fn result_for(item: &Value, status: &str, value: Option<&str>) -> Value {
    let mut result = json!({
        "attributeStatus": status,
        "component": item["component"],
        "variable": item["variable"],
    });
    if let Some(value) = value {
        result["attributeValue"] = json!(value);
    }
    result
}

/// `component.variable` of a `getVariableData` / `setVariableData` item.
fn target(item: &Value) -> String {
    format!(
        "{}.{}",
        item["component"]["name"].as_str().unwrap(),
        item["variable"]["name"].as_str().unwrap()
    )
}

#[actix_web::test]
async fn the_api_commands_reach_a_201_station_and_come_back_as_for_16() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cs = booted_201(&server, "CS201-CMD").await;
    let api = |method: &'static str, path: &str, body: Option<Value>| {
        spawn_request(
            server.http_addr,
            method,
            &format!("/api/v1/charge-points/CS201-CMD/{path}"),
            body,
        )
    };

    // TriggerMessage: the stored connector goes out as the EVSE id.
    for (message, connector, expected, status) in [
        (
            "MeterValues",
            Some(2),
            json!({"requestedMessage": "MeterValues", "evse": {"id": 2}}),
            "Accepted",
        ),
        (
            "StatusNotification",
            None,
            json!({"requestedMessage": "StatusNotification"}),
            "Rejected",
        ),
        (
            "Heartbeat",
            None,
            json!({"requestedMessage": "Heartbeat"}),
            "NotImplemented",
        ),
    ] {
        let mut body = json!({ "message": message });
        if let Some(c) = connector {
            body["connector_id"] = json!(c);
        }
        let request = api("POST", "trigger", Some(body));
        let call = next_call(&mut cs).await;
        assert_eq!(call.action, "TriggerMessage");
        assert_eq!(call.payload, expected);
        answer(&mut cs, &call, json!({ "status": status })).await;
        assert_eq!(
            request.await.unwrap(),
            (200, json!({ "status": status })),
            "{message}"
        );
    }

    // GetConfiguration -> GetVariables; the answer comes back under the keys asked for.
    let request = api(
        "GET",
        "configuration?key=HeartbeatInterval,NoSuchKey,EVSE@1.Power",
        None,
    );
    let call = next_call(&mut cs).await;
    assert_eq!(call.action, "GetVariables");
    let items = call.payload["getVariableData"].as_array().unwrap().clone();
    assert_eq!(
        items.iter().map(target).collect::<Vec<_>>(),
        ["OCPPCommCtrlr.HeartbeatInterval", "EVSE.Power"]
    );
    assert_eq!(items[1]["component"]["evse"], json!({"id": 1}));
    assert!(items.iter().all(|i| i["attributeType"] == "Actual"));
    answer(
        &mut cs,
        &call,
        json!({"getVariableResult": [
            result_for(&items[0], "Accepted", Some("300")),
            result_for(&items[1], "UnknownComponent", None),
        ]}),
    )
    .await;
    assert_eq!(
        request.await.unwrap(),
        (
            200,
            json!({
                "configurationKey": [{"key": "HeartbeatInterval", "readonly": false, "value": "300"}],
                "unknownKey": ["NoSuchKey", "EVSE@1.Power"],
            })
        )
    );

    // ChangeConfiguration -> SetVariables; attributeStatus -> the 1.6 status.
    for (attribute_status, status) in [
        ("Accepted", "Accepted"),
        ("RebootRequired", "RebootRequired"),
        ("Rejected", "Rejected"),
        ("UnknownVariable", "NotSupported"),
    ] {
        let request = api(
            "PUT",
            "configuration",
            Some(json!({"key": "MeterValueSampleInterval", "value": "30"})),
        );
        let call = next_call(&mut cs).await;
        assert_eq!(call.action, "SetVariables");
        assert_eq!(
            call.payload,
            json!({"setVariableData": [{
                "attributeType": "Actual",
                "attributeValue": "30",
                "component": {"name": "SampledDataCtrlr"},
                "variable": {"name": "TxUpdatedInterval"},
            }]})
        );
        let item = &call.payload["setVariableData"][0];
        answer(
            &mut cs,
            &call,
            json!({"setVariableResult": [{
                "attributeStatus": attribute_status,
                "component": item["component"],
                "variable": item["variable"],
            }]}),
        )
        .await;
        assert_eq!(
            request.await.unwrap(),
            (200, json!({ "status": status })),
            "{attribute_status}"
        );
    }

    // A key that reaches no 2.0.1 variable is answered as a 1.6 charge point answers an
    // unknown key, by the session itself: nothing goes to the station (the next call the
    // station reads below is the SetVariables of the next request, not a stand-in).
    for (method, path, body, expected) in [
        (
            "PUT",
            "configuration",
            Some(json!({"key": "NoSuchKey", "value": "1"})),
            json!({"status": "NotSupported"}),
        ),
        (
            "GET",
            "configuration?key=NoSuchKey",
            None,
            json!({"configurationKey": [], "unknownKey": ["NoSuchKey"]}),
        ),
    ] {
        let answered = api(method, path, body).await.unwrap();
        assert_eq!(answered, (200, expected), "{method} {path}");
    }

    // A CALLERROR with a 2.0.1 code is a 502 naming the code.
    let request = api(
        "PUT",
        "configuration",
        Some(json!({"key": "OCPPCommCtrlr.MessageTimeout[Default]", "value": "x"})),
    );
    let call = next_call(&mut cs).await;
    assert_eq!(
        call.payload["setVariableData"][0]["variable"],
        json!({"name": "MessageTimeout", "instance": "Default"})
    );
    cs.send_text(&json!([4, call.unique_id, "FormatViolation", "not a number", {}]).to_string())
        .await;
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 502, "{body}");
    assert_eq!(body["error_code"], "FormatViolation");

    // An answer the 2.0.1 response schema forbids is a 502 without a code.
    let request = api("POST", "trigger", Some(json!({"message": "Heartbeat"})));
    let call = next_call(&mut cs).await;
    cs.send_text(&json!([3, call.unique_id, {"status": "Maybe"}]).to_string())
        .await;
    let (code, body) = request.await.unwrap();
    assert_eq!(code, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("status"), "{body}");
    assert!(body.get("error_code").is_none());
    assert!(silent_for(&mut cs, Duration::from_millis(300)).await);
    server.shutdown().await;
}

#[actix_web::test]
async fn the_boot_metering_profile_reaches_a_201_station_through_its_variables() {
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
    let mut cs = booted_201(&server, "CS201-METER").await;

    // The read of every key: one GetVariables of the whole table, the metering variables first.
    let read = next_call(&mut cs).await;
    assert_eq!(read.action, "GetVariables");
    let items = read.payload["getVariableData"].as_array().unwrap().clone();
    let targets: Vec<String> = items.iter().map(target).collect();
    assert_eq!(
        targets[..6],
        [
            "SampledDataCtrlr.TxUpdatedInterval",
            "SampledDataCtrlr.TxUpdatedMeasurands",
            "SampledDataCtrlr.TxEndedMeasurands",
            "AlignedDataCtrlr.Interval",
            "AlignedDataCtrlr.Measurands",
            "AlignedDataCtrlr.TxEndedMeasurands",
        ]
    );
    let station_has = |t: &str| match t {
        "SampledDataCtrlr.TxUpdatedInterval" => Some("60"),
        "SampledDataCtrlr.TxUpdatedMeasurands" => Some("Energy.Active.Import.Register"),
        "SampledDataCtrlr.TxEndedMeasurands" => Some("Energy.Active.Import.Register"),
        "AlignedDataCtrlr.Interval" => Some("0"),
        "AlignedDataCtrlr.Measurands" => Some(""),
        "OCPPCommCtrlr.HeartbeatInterval" => Some("300"),
        _ => None,
    };
    let results: Vec<Value> = items
        .iter()
        .map(|item| match station_has(&target(item)) {
            Some(value) => result_for(item, "Accepted", Some(value)),
            None => result_for(item, "UnknownVariable", None),
        })
        .collect();
    answer(&mut cs, &read, json!({ "getVariableResult": results })).await;

    // Only the differing metering variables are set, in profile order.
    let expected = [
        ("SampledDataCtrlr.TxUpdatedInterval", "30", "Accepted"),
        (
            "SampledDataCtrlr.TxUpdatedMeasurands",
            "Energy.Active.Import.Register,Power.Active.Import,Voltage",
            "Accepted",
        ),
        (
            "AlignedDataCtrlr.Measurands",
            "Energy.Active.Import.Register",
            "UnknownVariable",
        ),
    ];
    for (variable, value, status) in expected {
        let set = next_call(&mut cs).await;
        assert_eq!(set.action, "SetVariables");
        let item = &set.payload["setVariableData"][0];
        assert_eq!(target(item), variable);
        assert_eq!(item["attributeValue"], value);
        answer(
            &mut cs,
            &set,
            json!({"setVariableResult": [{
                "attributeStatus": status,
                "component": item["component"],
                "variable": item["variable"],
            }]}),
        )
        .await;
    }
    assert!(silent_for(&mut cs, Duration::from_millis(500)).await);

    // `GET …/metering` shows what the station reported, in 1.6 key names, and the refusal.
    let path = "/api/v1/charge-points/CS201-METER/metering";
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&server, path).await.1["refused"]["MeterValuesAlignedData"]["status"]
                == "NotSupported"
        })
        .await
    );
    let (code, body) = get(&server, path).await;
    assert_eq!(code, 200, "{body}");
    let reported = &body["reported"];
    let value_of = |key: &str| {
        reported["configuration_key"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .map(|e| e["value"].clone())
    };
    assert_eq!(value_of("MeterValueSampleInterval"), Some(json!("60")));
    assert_eq!(
        value_of("MeterValuesSampledData"),
        Some(json!("Energy.Active.Import.Register"))
    );
    assert_eq!(value_of("HeartbeatInterval"), Some(json!("300")));
    assert!(reported["unknown_key"]
        .as_array()
        .unwrap()
        .contains(&json!("StopTxnAlignedData")));
    assert_eq!(
        body["refused"]["MeterValuesAlignedData"]["value"],
        "Energy.Active.Import.Register"
    );
    assert!(body["refused"].get("MeterValueSampleInterval").is_none());
    server.shutdown().await;
}

#[actix_web::test]
async fn the_same_command_goes_out_in_each_stations_own_version() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cs = booted_201(&server, "MIX-201").await;
    let mut cp = ChargePoint::connect(&server, "MIX-16").await;
    assert_eq!(cp.boot().await["status"], "Accepted");

    let configuration = |id: &str| {
        spawn_request(
            server.http_addr,
            "PUT",
            &format!("/api/v1/charge-points/{id}/configuration"),
            Some(json!({"key": "HeartbeatInterval", "value": "120"})),
        )
    };
    let to_201 = configuration("MIX-201");
    let to_16 = configuration("MIX-16");

    let call = next_call(&mut cs).await;
    assert_eq!(call.action, "SetVariables");
    assert_eq!(
        target(&call.payload["setVariableData"][0]),
        "OCPPCommCtrlr.HeartbeatInterval"
    );
    let item = call.payload["setVariableData"][0].clone();
    answer(
        &mut cs,
        &call,
        json!({"setVariableResult": [{
            "attributeStatus": "RebootRequired",
            "component": item["component"],
            "variable": item["variable"],
        }]}),
    )
    .await;

    let frame = cp.recv().await;
    assert_eq!(frame[0], json!(2), "{frame}");
    assert_eq!(frame[2], "ChangeConfiguration");
    assert_eq!(
        frame[3],
        json!({"key": "HeartbeatInterval", "value": "120"})
    );
    assert_valid("ChangeConfiguration", &frame[3]);
    cp.send_text(&json!([3, frame[1], {"status": "Accepted"}]).to_string())
        .await;

    assert_eq!(
        to_201.await.unwrap(),
        (200, json!({"status": "RebootRequired"}))
    );
    assert_eq!(to_16.await.unwrap(), (200, json!({"status": "Accepted"})));
    server.shutdown().await;
}
