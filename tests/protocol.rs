//! The WebSocket / OCPP-J edge over real sockets: CALLERRORs for malformed input (and the session
//! surviving them), frame size limits, binary frames, every charge-point-initiated action, the
//! idTag allow list, the handshake, connection replacement, keep-alive, and lenient meter values.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// Timestamps `secs` after a base 30 minutes ago (inside the default read range and far from
/// raw-data expiry), as RFC 3339 with `Z`.
fn clock() -> impl Fn(i64) -> String {
    let base = chrono::Utc::now() - chrono::Duration::minutes(30);
    move |secs: i64| {
        (base + chrono::Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }
}

/// Checks the shape of a CALLERROR (5 elements, errorDetails an object) and its uniqueId and
/// code; returns the errorDescription.
fn assert_call_error(frame: &Value, unique_id: &str, code: &str) -> String {
    let parts = frame
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {frame}"));
    assert_eq!(parts.len(), 5, "a CALLERROR has 5 elements: {frame}");
    assert_eq!(parts[0], json!(4), "MessageTypeId 4: {frame}");
    assert_eq!(parts[1], json!(unique_id), "uniqueId: {frame}");
    assert_eq!(parts[2], json!(code), "errorCode: {frame}");
    assert!(
        parts[3].is_string(),
        "errorDescription is a string: {frame}"
    );
    assert!(parts[4].is_object(), "errorDetails is an object: {frame}");
    parts[3].as_str().unwrap_or_default().to_owned()
}

/// The session still answers a Heartbeat with a CALLRESULT.
async fn assert_alive(cp: &mut ChargePoint) {
    let heartbeat = cp.call("Heartbeat", json!({})).await;
    assert!(heartbeat["currentTime"].is_string(), "{heartbeat}");
}

/// Sends `text`, expects the CALLERROR `code` for `unique_id`, checks the session survived, and
/// returns the errorDescription.
async fn expect_error(cp: &mut ChargePoint, text: &str, unique_id: &str, code: &str) -> String {
    cp.send_text(text).await;
    let answer = cp.recv().await;
    let description = assert_call_error(&answer, unique_id, code);
    assert_alive(cp).await;
    description
}

/// GET /api/v1/charge-points/{id}: `connected` is true.
async fn is_connected(server: &ocpp_meter::RunningServer, id: &str) -> bool {
    let (status, body) = get(server, &format!("/api/v1/charge-points/{id}")).await;
    status == 200 && body["connected"] == json!(true)
}

/// Samples of `id` in [from, to).
async fn samples(server: &ocpp_meter::RunningServer, id: &str, from: &str, to: &str) -> Vec<Value> {
    let (status, body) = get(
        server,
        &format!("/api/v1/charge-points/{id}/meter-values?from={from}&to={to}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["samples"].as_array().expect("samples").clone()
}

#[actix_web::test]
async fn malformed_input_gets_the_right_callerror_and_the_session_survives() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-BAD").await;

    // Not JSON at all: FormationViolation, with the uniqueId when it can be recovered.
    expect_error(&mut cp, "{not json", "-1", "FormationViolation").await;
    expect_error(
        &mut cp,
        r#"[2, "abc-1", "Heartbeat", {"#,
        "abc-1",
        "FormationViolation",
    )
    .await;
    expect_error(&mut cp, "", "-1", "FormationViolation").await;

    // JSON, but no OCPP-J frame: ProtocolError.
    expect_error(&mut cp, r#"{"a": 1}"#, "-1", "ProtocolError").await;
    expect_error(&mut cp, "42", "-1", "ProtocolError").await;
    expect_error(&mut cp, "[]", "-1", "ProtocolError").await;
    expect_error(&mut cp, r#"[2, "abc"]"#, "abc", "ProtocolError").await;
    expect_error(
        &mut cp,
        r#"[2, "abc", "Heartbeat"]"#,
        "abc",
        "ProtocolError",
    )
    .await;
    expect_error(
        &mut cp,
        r#"[2, "id7", "Heartbeat", {}, {}]"#,
        "id7",
        "ProtocolError",
    )
    .await;
    expect_error(
        &mut cp,
        r#"[5, "id8", "Heartbeat", {}]"#,
        "id8",
        "ProtocolError",
    )
    .await;
    expect_error(
        &mut cp,
        r#"[2, 17, "Heartbeat", {}]"#,
        "-1",
        "ProtocolError",
    )
    .await;

    // A well-formed CALL of an action nobody defined.
    let description = expect_error(
        &mut cp,
        r#"[2, "u1", "FlyToTheMoon", {}]"#,
        "u1",
        "NotImplemented",
    )
    .await;
    assert!(description.contains("FlyToTheMoon"), "{description}");

    // Payload errors name the field.
    let description = expect_error(
        &mut cp,
        r#"[2, "p1", "BootNotification", {"chargePointVendor": "V"}]"#,
        "p1",
        "OccurenceConstraintViolation",
    )
    .await;
    assert!(description.contains("chargePointModel"), "{description}");
    let description = expect_error(
        &mut cp,
        r#"[2, "p2", "MeterValues", {"connectorId": 1}]"#,
        "p2",
        "OccurenceConstraintViolation",
    )
    .await;
    assert!(description.contains("meterValue"), "{description}");
    let description = expect_error(
        &mut cp,
        r#"[2, "p3", "StatusNotification", {"connectorId": "1", "errorCode": "NoError", "status": "Available"}]"#,
        "p3",
        "TypeConstraintViolation",
    )
    .await;
    assert!(description.contains("connectorId"), "{description}");
    let description = expect_error(
        &mut cp,
        r#"[2, "p4", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Flying"}]"#,
        "p4",
        "PropertyConstraintViolation",
    )
    .await;
    assert!(
        description.contains("status") && description.contains("Flying"),
        "{description}"
    );

    // Through call_frame as well, which checks the uniqueId round trip.
    let frame = cp
        .call_frame(
            "StartTransaction",
            json!({"connectorId": 1, "meterStart": 0, "timestamp": "2025-01-01T00:00:00Z"}),
        )
        .await;
    let id = frame[1].as_str().unwrap_or_default().to_owned();
    let description = assert_call_error(&frame, &id, "OccurenceConstraintViolation");
    assert!(description.contains("idTag"), "{description}");
    assert_alive(&mut cp).await;

    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn messages_over_the_size_limit_close_with_1009() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.limits.max_frame_bytes = 4096;
    let server = start_server(config).await;

    // Under the limit: answered, in one frame and in fragments.
    let mut cp = ChargePoint::connect(&server, "CP-BIG").await;
    let small = cp
        .call(
            "DataTransfer",
            json!({"vendorId": "com.example", "data": "x".repeat(3000)}),
        )
        .await;
    assert_eq!(small["status"], "UnknownVendorId");
    let text = json!([2, "frag-ok", "Heartbeat", {}]).to_string();
    let (head, tail) = text.split_at(10);
    cp.send_message(Message::Frame(Frame::message(
        head.as_bytes().to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    cp.send_message(Message::Frame(Frame::message(
        tail.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    let answer = cp.recv().await;
    assert_eq!(answer[0], 3, "a fragmented CALL is answered: {answer}");
    assert_eq!(answer[1], "frag-ok");

    // One frame over the limit.
    let big =
        json!([2, "big", "DataTransfer", {"vendorId": "com.example", "data": "x".repeat(5000)}]);
    cp.send_text(&big.to_string()).await;
    assert_eq!(cp.close_code().await, Some(1009));

    // A fragmented message whose frames are each under the limit but whose whole is over it.
    let mut cp = ChargePoint::connect(&server, "CP-BIG2").await;
    assert_alive(&mut cp).await;
    let big = big.to_string();
    let (head, tail) = big.split_at(big.len() / 2);
    assert!(head.len() < 4096 && tail.len() < 4096 && big.len() > 4096);
    cp.send_message(Message::Frame(Frame::message(
        head.as_bytes().to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await;
    cp.send_message(Message::Frame(Frame::message(
        tail.as_bytes().to_vec(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await;
    assert_eq!(cp.close_code().await, Some(1009));

    server.shutdown().await;
}

/// A client text frame as the wire carries it: FIN, 64-bit length, masked with a zero key (valid,
/// and the payload bytes are then the text itself).
fn masked_text_frame(text: &str) -> Vec<u8> {
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(text.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(text.as_bytes());
    frame
}

#[actix_web::test]
async fn large_messages_arriving_in_pieces_after_idle_spells_are_answered() {
    // The HTTP/1 dispatcher frees its read and write buffers whenever the connection waits
    // (vendor/actix-http/PATCH.md) and the frame reader frees its own when it has nothing left to
    // decode: a message several times those buffers, arriving in pieces with the connection idle
    // before and between them, must still be put together and answered, and twice.
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-SLOW").await;
    cp.boot().await;
    for round in 0..2 {
        // The pauses are the subject of the test (idle spells), not synchronisation.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let unique_id = format!("slow-{round}");
        let data = "x".repeat(60_000);
        let text = json!([2, unique_id, "DataTransfer", {"vendorId": "com.example", "data": data}]);
        let frame = masked_text_frame(&text.to_string());
        for piece in frame.chunks(frame.len() / 3 + 1) {
            cp.send_raw(piece).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer = cp.recv().await;
        assert_eq!(answer[0], 3, "{answer}");
        assert_eq!(answer[1], unique_id.as_str());
        assert_eq!(answer[2]["status"], "UnknownVendorId");
    }
    assert_alive(&mut cp).await;
    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn binary_frames_are_read_as_utf8_or_refused() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-BIN").await;

    let call = json!([2, "bin-1", "Heartbeat", {}]).to_string();
    cp.send_message(Message::binary(call.into_bytes())).await;
    let answer = cp.recv().await;
    assert_eq!(answer[0], 3, "{answer}");
    assert_eq!(answer[1], "bin-1");
    assert_valid("HeartbeatResponse", &answer[2]);

    cp.send_message(Message::binary(vec![0x5b, 0xff, 0xfe, 0x00, 0x5d]))
        .await;
    let answer = cp.recv().await;
    assert_call_error(&answer, "-1", "FormationViolation");
    assert_alive(&mut cp).await;

    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn every_charge_point_action_gets_a_schema_valid_callresult() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-ALL").await;
    let at = clock();

    let boot = cp.boot().await;
    assert_eq!(boot["status"], "Accepted");
    let auth = cp.call("Authorize", json!({"idTag": "TAG1"})).await;
    assert_eq!(auth["idTagInfo"]["status"], "Accepted");
    let transfer = cp
        .call(
            "DataTransfer",
            json!({"vendorId": "com.example", "messageId": "hello", "data": "x"}),
        )
        .await;
    assert_eq!(transfer["status"], "UnknownVendorId");
    assert_eq!(
        cp.call(
            "DiagnosticsStatusNotification",
            json!({"status": "Uploaded"})
        )
        .await,
        json!({})
    );
    assert_eq!(
        cp.call("FirmwareStatusNotification", json!({"status": "Installed"}))
            .await,
        json!({})
    );
    assert_alive(&mut cp).await;
    assert_eq!(
        cp.call(
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": at(0)}),
        )
        .await,
        json!({})
    );

    let start = |tag: &str, secs: i64| json!({"connectorId": 1, "idTag": tag, "meterStart": 100, "timestamp": at(secs)});
    let first = cp.call("StartTransaction", start("TAG1", 0)).await;
    assert_eq!(first["idTagInfo"]["status"], "Accepted");
    let txn1 = first["transactionId"].as_i64().expect("transactionId");
    assert_eq!(
        cp.call(
            "MeterValues",
            meter_values(
                1,
                Some(txn1),
                &at(5),
                json!([{"value": "120", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]),
            ),
        )
        .await,
        json!({})
    );
    // With idTag and transactionData: idTagInfo comes back.
    let stop = cp
        .call(
            "StopTransaction",
            json!({
                "transactionId": txn1, "idTag": "TAG1", "meterStop": 150, "timestamp": at(10),
                "reason": "Local",
                "transactionData": [{"timestamp": at(10), "sampledValue": [
                    {"value": "150", "measurand": "Energy.Active.Import.Register", "context": "Transaction.End"}
                ]}]
            }),
        )
        .await;
    assert_eq!(stop["idTagInfo"]["status"], "Accepted", "{stop}");

    // Without idTag and transactionData: a bare, still valid, answer.
    let second = cp.call("StartTransaction", start("TAG2", 20)).await;
    let txn2 = second["transactionId"].as_i64().expect("transactionId");
    assert_ne!(txn1, txn2);
    let stop = cp
        .call(
            "StopTransaction",
            json!({"transactionId": txn2, "meterStop": 200, "timestamp": at(30)}),
        )
        .await;
    assert!(
        stop.get("idTagInfo").is_none(),
        "no idTag, no idTagInfo: {stop}"
    );

    let stored = samples(&server, "CP-ALL", &at(0), &at(60)).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[1]["context"], "Transaction.End");

    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn the_id_tag_allow_list_is_enforced() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.ocpp.id_tag_allow_list = vec!["GOOD".to_owned()];
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "CP-ALLOW").await;
    let at = clock();

    let auth = cp.call("Authorize", json!({"idTag": "STRANGER"})).await;
    assert_eq!(auth["idTagInfo"]["status"], "Invalid");
    let auth = cp.call("Authorize", json!({"idTag": "GOOD"})).await;
    assert_eq!(auth["idTagInfo"]["status"], "Accepted");

    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "STRANGER", "meterStart": 0, "timestamp": at(0)}),
        )
        .await;
    assert_eq!(start["idTagInfo"]["status"], "Invalid");
    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 2, "idTag": "GOOD", "meterStart": 0, "timestamp": at(1)}),
        )
        .await;
    assert_eq!(start["idTagInfo"]["status"], "Accepted");

    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn the_handshake_checks_subprotocol_and_id() {
    let redis = RedisServer::start();
    // A server held to 1.6 (`ocpp.protocols`): the handshake as it was before 2.0.1; the
    // negotiation between both versions is tests/ocpp201.rs.
    let mut config = test_config(&redis);
    config.ocpp.protocols = vec!["ocpp1.6".into()];
    let server = start_server(config).await;
    let base = format!("ws://{}", server.ws_addr);

    let cp = ChargePoint::connect(&server, "CP-HS").await;
    assert_eq!(cp.protocol.as_deref(), Some("ocpp1.6"));
    drop(cp);
    let cp = connect_with(&format!("{base}/ocpp/CP-HS2"), Some("ocpp2.0.1, ocpp1.6"))
        .await
        .expect("ocpp1.6 among the offers is accepted");
    assert_eq!(cp.protocol.as_deref(), Some("ocpp1.6"));
    drop(cp);

    assert_eq!(
        connect_with(&format!("{base}/ocpp/CP-HS3"), Some("ocpp2.0.1"))
            .await
            .err(),
        Some(400)
    );
    for bad in [
        "/ocpp/a%7Bb".to_owned(),
        format!("/ocpp/{}", "x".repeat(49)),
        "/ocpp/a%20b".to_owned(),
    ] {
        assert_eq!(
            connect_with(&format!("{base}{bad}"), Some("ocpp1.6"))
                .await
                .err(),
            Some(400),
            "{bad}"
        );
    }
    let mut longest = connect_with(&format!("{base}/ocpp/{}", "x".repeat(48)), Some("ocpp1.6"))
        .await
        .expect("48 characters are allowed");
    assert_alive(&mut longest).await;

    // Percent-encoded ids are decoded.
    let mut cp = connect_with(&format!("{base}/ocpp/CP%2D7"), Some("ocpp1.6"))
        .await
        .expect("connects");
    cp.boot().await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (status, body) = get(&server, "/api/v1/charge-points/CP-7").await;
            status == 200 && body["id"] == "CP-7" && body["vendor"] == "TestVendor"
        })
        .await,
        "stored as CP-7: {:?}",
        get(&server, "/api/v1/charge-points/CP-7").await
    );

    // The bare ws://HOST/{id} form.
    let mut bare = connect_with(&format!("{base}/CP-BARE"), Some("ocpp1.6"))
        .await
        .expect("connects");
    assert_eq!(bare.protocol.as_deref(), Some("ocpp1.6"));
    bare.boot().await;
    assert!(is_connected(&server, "CP-BARE").await);

    drop((cp, bare, longest));
    server.shutdown().await;
}

#[actix_web::test]
async fn a_second_connection_replaces_the_first() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut first = ChargePoint::connect(&server, "CP-DUP").await;
    first.boot().await;
    let mut second = ChargePoint::connect(&server, "CP-DUP").await;

    let code = first.close_code().await;
    assert!(code.is_some(), "the first connection gets a close frame");
    assert_alive(&mut second).await;
    second.boot().await;

    assert_eq!(server.registry.len(), 1);
    assert!(is_connected(&server, "CP-DUP").await);
    let (status, list) = get(&server, "/api/v1/charge-points").await;
    assert_eq!(status, 200, "{list}");
    let connected: Vec<&Value> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|c| c["connected"] == json!(true))
        .collect();
    assert_eq!(connected.len(), 1, "{list}");
    assert_eq!(connected[0]["id"], "CP-DUP");

    drop(second);
    server.shutdown().await;
}

#[actix_web::test]
async fn silent_connections_are_dropped_and_live_ones_kept() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.ocpp.ping_interval_secs = 1;
    config.ocpp.idle_timeout_secs = 2;
    let server = start_server(config).await;

    let mut silent = ChargePoint::connect(&server, "CP-SILENT").await;
    silent.boot().await;
    let mut awake = ChargePoint::connect(&server, "CP-AWAKE").await;
    awake.boot().await;
    let started = Instant::now();

    // Only `awake` is polled (so tungstenite answers its pings); `silent` never is.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(3500);
    loop {
        match tokio::time::timeout_at(deadline, awake.recv_message()).await {
            Err(_) => break,
            Ok(Some(Message::Ping(_))) => pings += 1,
            Ok(Some(Message::Close(frame))) => panic!("the polled client was closed: {frame:?}"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the polled client's connection ended"),
        }
    }
    assert!(pings >= 2, "the server pings every second: {pings}");
    assert!(started.elapsed() >= Duration::from_secs(3));

    assert!(
        eventually(Duration::from_secs(5), || async {
            !is_connected(&server, "CP-SILENT").await
        })
        .await,
        "the silent client was dropped"
    );
    assert!(is_connected(&server, "CP-AWAKE").await);
    assert_alive(&mut awake).await;
    // The silent client finds a close frame behind the unanswered pings.
    assert!(silent.close_code().await.is_some());

    drop(awake);
    server.shutdown().await;
}

#[actix_web::test]
async fn lenient_meter_values_are_accepted_and_stored() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-LAX").await;
    let at = clock();
    let naive = at(2).trim_end_matches('Z').to_owned();
    let signed = r#"OCMF|{"FV":"1.0","RD":[{"RV":1.5,"RU":"kWh"}]}|{"SD":"30 45 02"}"#;

    let payload = json!({
        "connectorId": 1,
        "meterValue": [
            {"timestamp": at(0), "sampledValue": [
                {"value": 230.5, "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
                {"value": "231", "measurand": "Voltage", "phase": "L2-N"},
                {"value": "50", "measurand": "Frequency", "unit": "Hertz"},
                {"value": "3", "measurand": "Power.Offered", "unit": "Furlongs"},
                {"value": "abc", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
                {"value": "16", "measurand": " Current.Import ", "phase": " L1 ", "unit": "A"}
            ]},
            {"timestamp": at(1), "sampledValue": [
                {"value": "25", "measurand": "Temperature", "location": "Body", "unit": "Celcius"},
                {"value": "212", "measurand": "Temperature", "location": "Outlet", "unit": "Fahrenheit"}
            ]},
            {"timestamp": naive, "sampledValue": [
                {"value": "42", "measurand": "SoC", "unit": "Percent", "location": "EV"}
            ]},
            {"timestamp": at(3), "sampledValue": [
                {"value": signed, "format": "SignedData", "measurand": "Energy.Active.Import.Register", "context": "Sample.Clock"}
            ]}
        ]
    });
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    // An empty list is fine and stores nothing.
    assert_eq!(
        cp.call("MeterValues", meter_values(1, None, &at(100), json!([])))
            .await,
        json!({})
    );
    assert!(samples(&server, "CP-LAX", &at(50), &at(150))
        .await
        .is_empty());

    let stored = samples(&server, "CP-LAX", &at(-10), &at(10)).await;
    let find = |measurand: &str, pick: &dyn Fn(&Value) -> bool| -> Value {
        let hits: Vec<&Value> = stored
            .iter()
            .filter(|s| s["measurand"] == measurand && pick(s))
            .collect();
        assert_eq!(hits.len(), 1, "one {measurand}: {stored:?}");
        hits[0].clone()
    };
    assert_eq!(stored.len(), 9, "every value but \"abc\": {stored:?}");

    let v1 = find("Voltage", &|s| s["phase"] == "L1-N");
    assert_eq!(
        (v1["value"].clone(), v1["unit"].clone()),
        (json!(230.5), json!("V"))
    );
    let v2 = find("Voltage", &|s| s["phase"] == "L2-N");
    assert_eq!(v2["value"], 231.0);
    assert_eq!(v2["unit"], "V", "missing unit -> the measurand's default");
    let hz = find("Frequency", &|_| true);
    assert_eq!(
        (hz["value"].clone(), hz["unit"].clone()),
        (json!(50.0), json!("Hz"))
    );
    let odd = find("Power.Offered", &|_| true);
    assert_eq!(odd["unit"], "Furlongs", "an unknown unit is kept");
    assert_eq!(odd["value"], 3.0);
    let current = find("Current.Import", &|_| true);
    assert_eq!(
        current["phase"], "L1",
        "whitespace around enum values is trimmed"
    );
    assert_eq!(current["value"], 16.0);
    assert_eq!(current["timestamp"], json!(at(0).replace('Z', ".000Z")));
    let body = find("Temperature", &|s| s["location"] == "Body");
    assert_eq!(
        (body["value"].clone(), body["unit"].clone()),
        (json!(25.0), json!("Celsius"))
    );
    let outlet = find("Temperature", &|s| s["location"] == "Outlet");
    assert_eq!(outlet["unit"], "Celsius");
    assert!(
        (outlet["value"].as_f64().unwrap_or(f64::NAN) - 100.0).abs() < 1e-6,
        "212 F is 100 C: {outlet}"
    );
    let soc = find("SoC", &|_| true);
    assert_eq!(
        soc["timestamp"],
        json!(at(2).replace('Z', ".000Z")),
        "a naive timestamp is read as UTC"
    );
    assert_eq!(soc["value"], 42.0);
    let signed_sample = find("Energy.Active.Import.Register", &|_| true);
    assert_eq!(signed_sample["raw_value"], signed);
    assert_eq!(signed_sample["format"], "SignedData");
    assert!(signed_sample.get("value").is_none(), "{signed_sample}");

    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn answers_from_the_charge_point_never_get_a_callerror() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-ANS").await;

    // A CALLRESULT or CALLERROR (well-formed or broken) answers a call of the server's; replying
    // with a CALLERROR could make both ends loop (OCPP-J 1.6 section 4.2.3). `call_frame` checks
    // that the next frame is the Heartbeat's answer, not a CALLERROR about these.
    for text in [
        r#"[3, "s1", {}]"#,
        r#"[4, "s2", "GenericError", "", {}]"#,
        r#"[3, "s3"]"#,
        r#"[3, "s4", {}, {}]"#,
        r#"[4, "s5", "GenericError", ""]"#,
        r#"[4, "s6", 1, "d", {}]"#,
        r#"[3, "s7", {"#,
    ] {
        cp.send_text(text).await;
        let answer = cp.call_frame("Heartbeat", json!({})).await;
        assert_eq!(answer[0], 3, "after {text}: {answer}");
    }

    drop(cp);
    server.shutdown().await;
}
