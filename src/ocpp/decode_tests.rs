//! decode_request: every action's happy path and every error code, with field paths.

use actors::charge_point::Request;
use actors::exchange::{BootInfo, StatusReport};
use chrono::{TimeZone, Utc};
use serde_json::value::RawValue;

use super::{decode_frame, decode_request, encode_payload_error, ErrorCode, Frame, PayloadError};

pub(super) fn decode(action: &str, json: &str) -> Result<Request, PayloadError> {
    let raw: &RawValue = serde_json::from_str(json).expect("test payload is JSON");
    decode_request(action, raw)
}

/// Asserts the error code and that the description starts with the field path.
fn assert_error(action: &str, json: &str, code: ErrorCode, path: &str) {
    let err = decode(action, json).expect_err(json);
    assert_eq!(err.code(), code, "{json}: {err}");
    assert!(
        err.description().starts_with(&format!("{path}: ")),
        "{json}: description {:?} does not start with {path:?}",
        err.description()
    );
}

#[test]
fn boot_notification_is_decoded() {
    let req = decode(
        "BootNotification",
        r#"{"chargePointVendor":"VendorX","chargePointModel":"M1","firmwareVersion":"1.2","iccid":null}"#,
    )
    .unwrap();
    assert_eq!(
        req,
        Request::Boot(BootInfo {
            vendor: "VendorX".into(),
            model: "M1".into(),
            firmware_version: Some("1.2".into()),
            ..BootInfo::default()
        })
    );
}

#[test]
fn small_requests_are_decoded() {
    assert_eq!(decode("Heartbeat", "{}").unwrap(), Request::Heartbeat);
    assert_eq!(
        decode("Authorize", r#"{"idTag":"04A2B3C4"}"#).unwrap(),
        Request::Authorize {
            id_tag: "04A2B3C4".into()
        }
    );
    assert_eq!(
        decode("DiagnosticsStatusNotification", r#"{"status":"Uploaded"}"#).unwrap(),
        Request::DiagnosticsStatus {
            status: "Uploaded".into()
        }
    );
    assert_eq!(
        decode("FirmwareStatusNotification", r#"{"status":" Installed "}"#).unwrap(),
        Request::FirmwareStatus {
            status: "Installed".into()
        }
    );
}

#[test]
fn start_transaction_is_decoded() {
    let req = decode(
        "StartTransaction",
        r#"{"connectorId":1,"idTag":"TAG1","meterStart":1200,"timestamp":"2024-05-01T10:00:00+02:00","reservationId":7}"#,
    )
    .unwrap();
    assert_eq!(
        req,
        Request::StartTransaction {
            connector_id: 1,
            id_tag: "TAG1".into(),
            meter_start: 1200,
            timestamp: Utc.with_ymd_and_hms(2024, 5, 1, 8, 0, 0).unwrap(),
            reservation_id: Some(7),
        }
    );
}

#[test]
fn status_notification_is_decoded_with_trimmed_enums() {
    let req = decode(
        "StatusNotification",
        r#"{"connectorId":2,"errorCode":"NoError ","status":"\tCharging","timestamp":"2024-05-01T10:00:00"}"#,
    )
    .unwrap();
    assert_eq!(
        req,
        Request::StatusNotification(StatusReport {
            connector_id: 2,
            status: "Charging".into(),
            error_code: "NoError".into(),
            info: None,
            timestamp: Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()),
            vendor_id: None,
            vendor_error_code: None,
        })
    );
}

#[test]
fn data_transfer_keeps_data_verbatim() {
    let req = decode(
        "DataTransfer",
        r#"{"vendorId":"com.example","messageId":"m","data":"a\"b"}"#,
    )
    .unwrap();
    assert_eq!(
        req,
        Request::DataTransfer {
            vendor_id: "com.example".into(),
            message_id: Some("m".into()),
            data: Some("a\"b".into()),
        }
    );
    let req = decode("DataTransfer", r#"{"vendorId":"v","data":{"k":[1,2]}}"#).unwrap();
    assert!(matches!(req, Request::DataTransfer { data: Some(d), .. } if d == r#"{"k":[1,2]}"#));
}

#[test]
fn unknown_action_is_not_implemented_and_named() {
    let err = decode("FlyToTheMoon", "{}").unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotImplemented);
    assert!(err.description().contains("FlyToTheMoon"));
}

#[test]
fn central_system_actions_are_not_supported() {
    for action in [
        "Reset",
        "RemoteStartTransaction",
        "SecurityEventNotification",
    ] {
        let err = decode(action, "{}").unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotSupported, "{action}");
        assert!(err.description().contains(action));
    }
}

#[test]
fn non_object_payload_is_a_formation_violation() {
    for payload in ["[]", r#""text""#, "null", "12", "true"] {
        let err = decode("Heartbeat", payload).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FormationViolation, "{payload}");
        let err = decode("MeterValues", payload).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FormationViolation, "{payload}");
    }
}

#[test]
fn missing_fields_are_occurrence_violations_with_paths() {
    use ErrorCode::OccurenceConstraintViolation as O;
    assert_error("Authorize", "{}", O, "idTag");
    assert_error(
        "BootNotification",
        r#"{"chargePointVendor":"V"}"#,
        O,
        "chargePointModel",
    );
    assert_error("MeterValues", r#"{"connectorId":1}"#, O, "meterValue");
    assert_error("MeterValues", r#"{"meterValue":[]}"#, O, "connectorId");
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"sampledValue":[]}]}"#,
        O,
        "meterValue[0].timestamp",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z"}]}"#,
        O,
        "meterValue[0].sampledValue",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"1"}]},
            {"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"unit":"W"}]}]}"#,
        O,
        "meterValue[1].sampledValue[0].value",
    );
    assert_error(
        "StopTransaction",
        r#"{"transactionId":1,"meterStop":5}"#,
        O,
        "timestamp",
    );
    assert_error(
        "StatusNotification",
        r#"{"connectorId":1,"errorCode":"NoError"}"#,
        O,
        "status",
    );
}

#[test]
fn wrong_json_types_are_type_violations_with_paths() {
    use ErrorCode::TypeConstraintViolation as T;
    assert_error(
        "MeterValues",
        r#"{"connectorId":"1","meterValue":[]}"#,
        T,
        "connectorId",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":{}}"#,
        T,
        "meterValue",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":{"value":"1"}}]}"#,
        T,
        "meterValue[0].sampledValue",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[
            {"value":"1"},{"value":"2"},{"value":true}]}]}"#,
        T,
        "meterValue[0].sampledValue[2].value",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"1","measurand":5}]}]}"#,
        T,
        "meterValue[0].sampledValue[0].measurand",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":1714557600,"sampledValue":[]}]}"#,
        T,
        "meterValue[0].timestamp",
    );
    assert_error("Authorize", r#"{"idTag":42}"#, T, "idTag");
    assert_error(
        "StartTransaction",
        r#"{"connectorId":1,"idTag":"T","meterStart":1.5,"timestamp":"2024-05-01T10:00:00Z"}"#,
        T,
        "meterStart",
    );
}

#[test]
fn out_of_range_values_are_property_violations_with_paths() {
    use ErrorCode::PropertyConstraintViolation as P;
    assert_error(
        "MeterValues",
        r#"{"connectorId":-1,"meterValue":[]}"#,
        P,
        "connectorId",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"transactionId":1099511627776,"meterValue":[]}"#,
        P,
        "transactionId",
    );
    assert_error(
        "StatusNotification",
        r#"{"connectorId":1,"errorCode":"NoError","status":"Flying"}"#,
        P,
        "status",
    );
    assert_error(
        "StatusNotification",
        r#"{"connectorId":1,"errorCode":"Oops","status":"Available"}"#,
        P,
        "errorCode",
    );
    assert_error(
        "StatusNotification",
        r#"{"connectorId":1,"errorCode":"NoError","status":"Available","info":"123456789012345678901234567890123456789012345678901"}"#,
        P,
        "info",
    );
    assert_error(
        "Authorize",
        r#"{"idTag":"123456789012345678901"}"#,
        P,
        "idTag",
    );
    assert_error(
        "BootNotification",
        r#"{"chargePointVendor":"123456789012345678901","chargePointModel":"M"}"#,
        P,
        "chargePointVendor",
    );
    assert_error(
        "StartTransaction",
        r#"{"connectorId":0,"idTag":"T","meterStart":1,"timestamp":"2024-05-01T10:00:00Z"}"#,
        P,
        "connectorId",
    );
    assert_error(
        "StartTransaction",
        r#"{"connectorId":1,"idTag":"T","meterStart":1,"timestamp":"soon"}"#,
        P,
        "timestamp",
    );
    assert_error(
        "StopTransaction",
        r#"{"transactionId":1,"meterStop":5,"timestamp":"2024-05-01T10:00:00Z","reason":"Bored"}"#,
        P,
        "reason",
    );
    assert_error(
        "MeterValues",
        r#"{"connectorId":1,"meterValue":[{"timestamp":"yesterday","sampledValue":[{"value":"1"}]}]}"#,
        P,
        "meterValue[0].timestamp",
    );
    assert_error(
        "DiagnosticsStatusNotification",
        r#"{"status":"Lost"}"#,
        P,
        "status",
    );
    assert_error(
        "FirmwareStatusNotification",
        r#"{"status":"Lost"}"#,
        P,
        "status",
    );
    assert_error(
        "DataTransfer",
        r#"{"vendorId":"v","messageId":"123456789012345678901234567890123456789012345678901"}"#,
        P,
        "messageId",
    );
}

#[test]
fn payload_errors_become_call_errors() {
    let err = decode("Authorize", "{}").unwrap_err();
    let text = encode_payload_error("u1", &err);
    let Ok(Frame::CallError {
        unique_id,
        code,
        description,
        ..
    }) = decode_frame(&text)
    else {
        panic!("{text}")
    };
    assert_eq!(unique_id, "u1");
    assert_eq!(code, "OccurenceConstraintViolation");
    assert_eq!(description, "idTag: required field is missing");
}

#[test]
fn full_frame_round_trip() {
    let text = r#"[2,"m-1","Authorize",{"idTag":"ABC"}]"#;
    let Ok(Frame::Call {
        action, payload, ..
    }) = decode_frame(text)
    else {
        panic!("not a call")
    };
    assert_eq!(
        decode_request(&action, payload).unwrap(),
        Request::Authorize {
            id_tag: "ABC".into()
        }
    );
}

#[test]
fn no_input_panics() {
    let frames = [
        r#"[2,"1","MeterValues",{"connectorId":1,"transactionId":5,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"1.5","unit":"kWh","measurand":"Energy.Active.Import.Register","phase":"L1","format":"Raw"}]}]}]"#,
        r#"[2,"2","StopTransaction",{"transactionId":5,"meterStop":9,"timestamp":"2024-05-01T10:00:00Z","idTag":"é","transactionData":[{"timestamp":"2024-05-01T10:00:00","sampledValue":[{"value":"x"}]}]}]"#,
        r#"[2,"3","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]"#,
        r#"[2,"4","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]"#,
    ];
    let actions = [
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    ];
    for frame in frames {
        let chars: Vec<(usize, char)> = frame.char_indices().collect();
        for (at, ch) in &chars {
            let truncated = &frame[..*at];
            let replaced = format!("{}{}{}", truncated, "}\"1-é", &frame[at + ch.len_utf8()..]);
            for text in [truncated, replaced.as_str()] {
                if let Ok(Frame::Call { payload, .. }) = decode_frame(text) {
                    for action in actions {
                        let _ = decode_request(action, payload);
                    }
                }
            }
        }
    }
}
