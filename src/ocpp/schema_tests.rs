//! Every encoded reply, and the request fixtures the other tests rely on, checked against the
//! official OCPP 1.6 JSON schemas.

use actors::charge_point::{AuthorizationStatus, DataTransferStatus, Reply};
use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::{decode_frame, decode_tests::decode, encode_reply, Frame};

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocpp-schemas/v16");

fn validator(name: &str) -> jsonschema::Validator {
    let path = format!("{SCHEMA_DIR}/{name}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
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

#[test]
fn every_reply_matches_its_response_schema() {
    let now = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let replies = [
        (
            "BootNotification",
            Reply::Boot {
                current_time: now,
                interval_secs: 300,
            },
        ),
        ("Heartbeat", Reply::Heartbeat { current_time: now }),
        (
            "Authorize",
            Reply::Authorize {
                status: AuthorizationStatus::Blocked,
            },
        ),
        (
            "StartTransaction",
            Reply::StartTransaction {
                transaction_id: 4711,
                status: AuthorizationStatus::Accepted,
            },
        ),
        (
            "StopTransaction",
            Reply::StopTransaction {
                status: Some(AuthorizationStatus::Expired),
            },
        ),
        ("StopTransaction", Reply::StopTransaction { status: None }),
        ("MeterValues", Reply::MeterValues),
        ("StatusNotification", Reply::StatusNotification),
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
        ("DiagnosticsStatusNotification", Reply::DiagnosticsStatus),
        ("FirmwareStatusNotification", Reply::FirmwareStatus),
    ];
    for (action, reply) in &replies {
        let text = encode_reply("id-1", reply);
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
    assert_eq!(
        encode_reply(
            "b",
            &Reply::Boot {
                current_time: now,
                interval_secs: 60
            }
        ),
        r#"[3,"b",{"status":"Accepted","currentTime":"2024-05-01T10:00:00.000Z","interval":60}]"#
    );
    assert_eq!(
        encode_reply("s", &Reply::StopTransaction { status: None }),
        r#"[3,"s",{}]"#
    );
    assert_eq!(
        encode_reply(
            "a",
            &Reply::Authorize {
                status: AuthorizationStatus::ConcurrentTx
            }
        ),
        r#"[3,"a",{"idTagInfo":{"status":"ConcurrentTx"}}]"#
    );
    assert_eq!(encode_reply("m", &Reply::MeterValues), r#"[3,"m",{}]"#);
}

#[test]
fn failed_reply_is_an_internal_error() {
    let text = encode_reply("f", &Reply::Failed("redis down".into()));
    assert_eq!(text, r#"[4,"f","InternalError","redis down",{}]"#);
}

#[test]
fn request_fixtures_match_the_request_schemas() {
    let fixtures = [
        ("Authorize", r#"{"idTag":"04A2B3C4"}"#),
        (
            "BootNotification",
            r#"{"chargePointVendor":"VendorX","chargePointModel":"M1","firmwareVersion":"1.2"}"#,
        ),
        (
            "DataTransfer",
            r#"{"vendorId":"com.example","messageId":"m","data":"a\"b"}"#,
        ),
        ("DiagnosticsStatusNotification", r#"{"status":"Uploaded"}"#),
        ("FirmwareStatusNotification", r#"{"status":"Installed"}"#),
        ("Heartbeat", "{}"),
        (
            "StartTransaction",
            r#"{"connectorId":1,"idTag":"TAG1","meterStart":1200,"timestamp":"2024-05-01T10:00:00+02:00","reservationId":7}"#,
        ),
        (
            "StatusNotification",
            r#"{"connectorId":2,"errorCode":"NoError","status":"Charging","timestamp":"2024-05-01T10:00:00Z"}"#,
        ),
        (
            "MeterValues",
            r#"{"connectorId":2,"transactionId":77,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[
                {"value":"230.1","context":"Sample.Clock","format":"Raw","measurand":"Voltage","phase":"L2-N","location":"Inlet","unit":"V"},
                {"value":"7.4","measurand":"Power.Active.Import","unit":"kW"},
                {"value":"212","measurand":"Temperature","unit":"Fahrenheit"},
                {"value":"OCMF|sig","format":"SignedData","unit":"kWh"}]}]}"#,
        ),
        (
            "StopTransaction",
            r#"{"transactionId":4711,"idTag":"TAG1","meterStop":20500,"timestamp":"2024-05-01T11:00:00Z","reason":"EVDisconnected","transactionData":[
                {"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"10","unit":"kWh","context":"Transaction.Begin"}]},
                {"timestamp":"2024-05-01T11:00:00Z","sampledValue":[{"value":"20.5","unit":"kWh","context":"Transaction.End"}]}]}"#,
        ),
    ];
    for (action, json) in fixtures {
        let instance: Value = serde_json::from_str(json).unwrap();
        assert_valid(action, &instance);
        decode(action, json).unwrap_or_else(|e| panic!("{action}: {e}"));
    }
}

#[test]
fn lenient_fixtures_really_are_off_schema() {
    // The leniency tests must exercise deviations the schema forbids, or they prove nothing.
    let validator = validator("MeterValues");
    for json in [
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":12.5}]}]}"#,
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"1","phase":" L1 "}]}]}"#,
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"1","unit":"Furlongs"}]}]}"#,
        r#"{"connectorId":1,"meterValue":[]}"#,
    ] {
        let instance: Value = serde_json::from_str(json).unwrap();
        assert!(!validator.is_valid(&instance), "{json}");
        decode("MeterValues", json).unwrap_or_else(|e| panic!("{json}: {e}"));
    }
}
