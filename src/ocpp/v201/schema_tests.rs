//! Every reply the 2.0.1 codec can produce, and the request fixtures the decoding tests rely
//! on, checked against the official OCPP 2.0.1 JSON schemas (draft-06).

use actors::charge_point::{AuthorizationStatus, DataTransferStatus, Reply};
use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::decode_tests::decode;
use super::encode_reply;
use crate::ocpp::{decode_frame, Frame};

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocpp-schemas/v201");

fn validator(name: &str) -> jsonschema::Validator {
    let path = format!("{SCHEMA_DIR}/{name}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft6)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_valid(schema: &str, instance: &Value) {
    let validator = validator(schema);
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{schema}: {instance} -> {errors:?}");
}

/// Every (action, reply) pair the codec answers a 2.0.1 station with.
fn every_reply() -> Vec<(&'static str, Reply)> {
    let now = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let mut replies = vec![
        (
            "BootNotification",
            Reply::Boot {
                current_time: now,
                interval_secs: 300,
            },
        ),
        ("Heartbeat", Reply::Heartbeat { current_time: now }),
        ("MeterValues", Reply::MeterValues),
        ("StatusNotification", Reply::StatusNotification),
        ("FirmwareStatusNotification", Reply::FirmwareStatus),
        ("LogStatusNotification", Reply::DiagnosticsStatus),
        ("NotifyEvent", Reply::Noted),
        ("SecurityEventNotification", Reply::Noted),
        (
            "TransactionEvent",
            Reply::StationTransaction { status: None },
        ),
        (
            "DataTransfer",
            Reply::DataTransfer {
                status: DataTransferStatus::UnknownVendorId,
                data: None,
            },
        ),
        (
            "DataTransfer",
            Reply::DataTransfer {
                status: DataTransferStatus::Accepted,
                data: Some("ok \"quoted\"".into()),
            },
        ),
    ];
    for status in [
        AuthorizationStatus::Accepted,
        AuthorizationStatus::Blocked,
        AuthorizationStatus::Expired,
        AuthorizationStatus::Invalid,
        AuthorizationStatus::ConcurrentTx,
    ] {
        replies.push(("Authorize", Reply::Authorize { status }));
        replies.push((
            "TransactionEvent",
            Reply::StationTransaction {
                status: Some(status),
            },
        ));
    }
    replies
}

#[test]
fn every_reply_matches_its_response_schema() {
    for (action, reply) in every_reply() {
        let text = encode_reply("id-1", action, &reply);
        let Ok(Frame::CallResult { unique_id, payload }) = decode_frame(&text) else {
            panic!("{action}: {text} is not a CALLRESULT")
        };
        assert_eq!(unique_id, "id-1");
        let payload: Value = serde_json::from_str(payload.get()).unwrap();
        assert_valid(&format!("{action}Response"), &payload);
    }
}

#[test]
fn replies_have_the_expected_shape() {
    let now = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let boot = Reply::Boot {
        current_time: now,
        interval_secs: 60,
    };
    assert_eq!(
        encode_reply("b", "BootNotification", &boot),
        r#"[3,"b",{"currentTime":"2024-05-01T10:00:00.000Z","interval":60,"status":"Accepted"}]"#
    );
    let authorize = Reply::Authorize {
        status: AuthorizationStatus::Blocked,
    };
    assert_eq!(
        encode_reply("a", "Authorize", &authorize),
        r#"[3,"a",{"idTokenInfo":{"status":"Blocked"}}]"#
    );
    let event = Reply::StationTransaction { status: None };
    assert_eq!(
        encode_reply("t", "TransactionEvent", &event),
        r#"[3,"t",{}]"#
    );
    let failed = Reply::Failed("redis down".into());
    assert_eq!(
        encode_reply("f", "TransactionEvent", &failed),
        r#"[4,"f","InternalError","redis down",{}]"#
    );
}

/// The request fixtures of `decode_tests`, valid against the request schemas, so the decoding
/// tests exercise what real stations send.
pub(super) const FIXTURES: &[(&str, &str)] = &[
    (
        "BootNotification",
        r#"{"reason":"PowerUp","chargingStation":{"model":"M201","vendorName":"VendorY","serialNumber":"SN-1","firmwareVersion":"2.0.1-a","modem":{"iccid":"8931","imsi":"2620"}}}"#,
    ),
    ("Heartbeat", "{}"),
    (
        "StatusNotification",
        r#"{"timestamp":"2024-05-01T10:00:00Z","connectorStatus":"Occupied","evseId":2,"connectorId":1}"#,
    ),
    (
        "Authorize",
        r#"{"idToken":{"idToken":"04A2B3C4","type":"ISO14443"}}"#,
    ),
    (
        "TransactionEvent",
        r#"{"eventType":"Started","timestamp":"2024-05-01T10:00:00Z","triggerReason":"CablePluggedIn","seqNo":0,
            "transactionInfo":{"transactionId":"f1e2d3c4-b5a6-4789-8abc-def012345678","chargingState":"EVConnected"},
            "evse":{"id":1,"connectorId":1},"idToken":{"idToken":"TAG1","type":"Local"},
            "meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[
                {"value":1.2,"context":"Transaction.Begin","unitOfMeasure":{"unit":"kWh"}}]}]}"#,
    ),
    (
        "TransactionEvent",
        r#"{"eventType":"Updated","timestamp":"2024-05-01T10:05:00Z","triggerReason":"MeterValuePeriodic","seqNo":1,"offline":true,
            "transactionInfo":{"transactionId":"f1e2d3c4-b5a6-4789-8abc-def012345678","chargingState":"Charging"},
            "meterValue":[{"timestamp":"2024-05-01T10:05:00Z","sampledValue":[
                {"value":230.1,"measurand":"Voltage","phase":"L2-N","location":"Inlet","context":"Sample.Clock","unitOfMeasure":{"unit":"V"}},
                {"value":7.4,"measurand":"Power.Active.Import","unitOfMeasure":{"unit":"W","multiplier":3}},
                {"value":1500,"measurand":"Energy.Active.Import.Register","unitOfMeasure":{"unit":"Wh"},
                 "signedMeterValue":{"signedMeterData":"b2NtZg==","signingMethod":"ECDSA","encodingMethod":"OCMF","publicKey":"a2V5"}}]}]}"#,
    ),
    (
        "TransactionEvent",
        r#"{"eventType":"Ended","timestamp":"2024-05-01T11:00:00Z","triggerReason":"EVDeparted","seqNo":2,
            "transactionInfo":{"transactionId":"f1e2d3c4-b5a6-4789-8abc-def012345678","stoppedReason":"EVDisconnected"},
            "idToken":{"idToken":"TAG1","type":"Local"},
            "meterValue":[{"timestamp":"2024-05-01T11:00:00Z","sampledValue":[
                {"value":20.5,"context":"Transaction.End","unitOfMeasure":{"unit":"kWh"}}]}]}"#,
    ),
    (
        "MeterValues",
        r#"{"evseId":0,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[
            {"value":-12.5,"measurand":"Energy.Active.Net","unitOfMeasure":{"unit":"kWh","multiplier":-1}},
            {"value":49.98,"measurand":"Frequency"}]}]}"#,
    ),
    (
        "NotifyEvent",
        r#"{"generatedAt":"2024-05-01T10:00:00Z","seqNo":0,"eventData":[{"eventId":1,"timestamp":"2024-05-01T10:00:00Z",
            "trigger":"Alerting","actualValue":"true","eventNotificationType":"HardWiredMonitor",
            "component":{"name":"EVSE","evse":{"id":1}},"variable":{"name":"Problem"}}]}"#,
    ),
    (
        "SecurityEventNotification",
        r#"{"type":"FirmwareUpdated","timestamp":"2024-05-01T10:00:00Z","techInfo":"2.0.1-b"}"#,
    ),
    (
        "FirmwareStatusNotification",
        r#"{"status":"Installed","requestId":4}"#,
    ),
    (
        "LogStatusNotification",
        r#"{"status":"Uploaded","requestId":5}"#,
    ),
    (
        "DataTransfer",
        r#"{"vendorId":"com.example","messageId":"m","data":{"a":[1,2]}}"#,
    ),
];

#[test]
fn request_fixtures_match_the_request_schemas() {
    for (action, json) in FIXTURES {
        let instance: Value = serde_json::from_str(json).unwrap();
        assert_valid(&format!("{action}Request"), &instance);
        decode(action, json).unwrap_or_else(|e| panic!("{action}: {e}"));
    }
}
