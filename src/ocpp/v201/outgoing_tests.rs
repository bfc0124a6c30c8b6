//! The 2.0.1 server calls: every encoded request checked against the official OCPP 2.0.1
//! request schema, every answer fixture checked against the response schema and decoded (a
//! fixture the schema refuses must decode to `BadResponse`, one it accepts must not).

use actors::server_call::{CallError, CallReply, ConfigurationEntry, ServerCall, TriggerKind};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::outgoing::{answer_without_call, decode_call_result, encode_server_call, read_answer};
use super::variables::TABLE;
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

fn schema_errors(schema: &str, instance: &Value) -> Vec<String> {
    validator(schema)
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect()
}

/// Encodes `call`, checks the frame and its payload against `{action}Request.json`, and
/// returns the action and payload.
fn encode_checked(call: &ServerCall) -> (String, Value) {
    let text = encode_server_call("cs-7", call);
    let Ok(Frame::Call {
        unique_id,
        action,
        payload,
    }) = decode_frame(&text)
    else {
        panic!("{text} is not a CALL")
    };
    assert_eq!(unique_id, "cs-7");
    let payload: Value = serde_json::from_str(payload.get()).unwrap();
    let errors = schema_errors(&format!("{action}Request"), &payload);
    assert!(errors.is_empty(), "{action}: {payload} -> {errors:?}");
    (action.into_owned(), payload)
}

fn raw(v: &Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn trigger(message: TriggerKind, connector_id: Option<u32>) -> ServerCall {
    ServerCall::Trigger {
        message,
        connector_id,
    }
}

fn get(keys: &[&str]) -> ServerCall {
    ServerCall::GetConfiguration {
        keys: keys.iter().map(|k| k.to_string()).collect(),
    }
}

fn change(key: &str, value: &str) -> ServerCall {
    ServerCall::ChangeConfiguration {
        key: key.into(),
        value: value.into(),
    }
}

/// Decodes `answer` to `call` after checking that the response schema agrees with the
/// decoder about whether it is valid.
fn decode_checked(call: &ServerCall, response_schema: &str, answer: Value) -> CallReply {
    assert!(
        schema_errors(response_schema, &answer).is_empty(),
        "fixture {answer} is not a valid {response_schema}"
    );
    decode_call_result(call, &raw(&answer)).unwrap_or_else(|e| panic!("{answer}: {e}"))
}

/// Asserts that `answer` breaks `response_schema` and that the decoder refuses it too.
fn assert_refused(call: &ServerCall, response_schema: &str, answer: Value) {
    assert!(
        !schema_errors(response_schema, &answer).is_empty(),
        "fixture {answer} is a valid {response_schema}"
    );
    let result = decode_call_result(call, &raw(&answer));
    assert!(
        matches!(result, Err(CallError::BadResponse(_))),
        "{answer} -> {result:?}"
    );
}

#[test]
fn every_request_matches_its_request_schema() {
    let kinds = [
        TriggerKind::MeterValues,
        TriggerKind::StatusNotification,
        TriggerKind::Heartbeat,
        TriggerKind::BootNotification,
    ];
    for kind in kinds {
        for connector in [None, Some(1), Some(3)] {
            let (action, _) = encode_checked(&trigger(kind, connector));
            assert_eq!(action, "TriggerMessage");
        }
    }
    let gets = [
        get(&[]),
        get(&["HeartbeatInterval"]),
        get(&["MeterValuesSampledData", "NoSuchKey", "EVSE@1.Power"]),
        get(&["Connector[Main]@1:2.Available[x]"]),
        get(&["NoSuchKey"]),
    ];
    for call in &gets {
        let (action, _) = encode_checked(call);
        assert_eq!(action, "GetVariables");
    }
    let (action, _) = encode_checked(&change(
        "MeterValuesSampledData",
        "Energy.Active.Import.Register,Power.Active.Import",
    ));
    assert_eq!(action, "SetVariables");
    let (action, _) = encode_checked(&change("OCPPCommCtrlr.MessageTimeout[Default]", "30"));
    assert_eq!(action, "SetVariables");
    // Calls answered without the station still put a valid request on the wire if sent.
    for call in [
        change("NoSuchKey", "1"),
        change("HeartbeatInterval", &"9".repeat(1001)),
    ] {
        let (action, _) = encode_checked(&call);
        assert_eq!(action, "GetVariables");
    }
}

#[test]
fn requests_have_the_expected_shape() {
    assert_eq!(
        encode_checked(&trigger(TriggerKind::MeterValues, Some(2))).1,
        json!({"requestedMessage": "MeterValues", "evse": {"id": 2}})
    );
    assert_eq!(
        encode_checked(&trigger(TriggerKind::BootNotification, None)).1,
        json!({"requestedMessage": "BootNotification"})
    );
    assert_eq!(
        encode_checked(&change("MeterValueSampleInterval", "30")).1,
        json!({"setVariableData": [{
            "attributeType": "Actual",
            "attributeValue": "30",
            "component": {"name": "SampledDataCtrlr"},
            "variable": {"name": "TxUpdatedInterval"},
        }]})
    );
    assert_eq!(
        encode_checked(&get(&["TransactionMessageAttempts", "EVSE@1:2.Power"])).1,
        json!({"getVariableData": [
            {
                "attributeType": "Actual",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "MessageAttempts", "instance": "TransactionEvent"},
            },
            {
                "attributeType": "Actual",
                "component": {"name": "EVSE", "evse": {"id": 1, "connectorId": 2}},
                "variable": {"name": "Power"},
            },
        ]})
    );
    // Reading every key asks for every row of the table, in table order.
    let (_, all) = encode_checked(&get(&[]));
    let data = all["getVariableData"].as_array().unwrap();
    assert_eq!(data.len(), TABLE.len());
    for (item, mapping) in data.iter().zip(TABLE) {
        assert_eq!(item["component"]["name"], mapping.component);
        assert_eq!(item["variable"]["name"], mapping.variable);
    }
}

#[test]
fn trigger_answers_are_read_and_checked() {
    let call = trigger(TriggerKind::Heartbeat, None);
    for status in ["Accepted", "Rejected", "NotImplemented"] {
        assert_eq!(
            decode_checked(&call, "TriggerMessageResponse", json!({"status": status})),
            CallReply::Trigger {
                status: status.into()
            }
        );
    }
    assert_eq!(
        decode_checked(
            &call,
            "TriggerMessageResponse",
            json!({"status": "Rejected", "statusInfo": {"reasonCode": "Busy"}})
        ),
        CallReply::Trigger {
            status: "Rejected".into()
        }
    );
    assert_refused(&call, "TriggerMessageResponse", json!({"status": "Maybe"}));
    assert_refused(&call, "TriggerMessageResponse", json!({}));
    assert_refused(&call, "TriggerMessageResponse", json!({"status": 1}));
    assert_refused(
        &call,
        "TriggerMessageResponse",
        json!({"status": "Accepted", "statusInfo": {"reasonCode": "x".repeat(21)}}),
    );
    assert_refused(
        &call,
        "TriggerMessageResponse",
        json!({"status": "Accepted", "statusInfo": {}}),
    );
}

fn result(component: &str, variable: &str, status: &str, value: Option<&str>) -> Value {
    let mut item = json!({
        "attributeStatus": status,
        "component": {"name": component},
        "variable": {"name": variable},
    });
    if let Some(value) = value {
        item["attributeValue"] = json!(value);
    }
    item
}

#[test]
fn get_variables_answers_come_back_as_configuration_keys() {
    let call = get(&[
        "MeterValueSampleInterval",
        "NoSuchKey",
        "OCPPCommCtrlr.QueueAllMessages",
        "StopTxnSampledData",
        "HeartbeatInterval",
    ]);
    let answer = json!({"getVariableResult": [
        result("SampledDataCtrlr", "TxUpdatedInterval", "Accepted", Some("60")),
        // Names are case insensitive in 2.0.1.
        result("ocppcommctrlr", "queueallmessages", "Accepted", Some("true")),
        result("SampledDataCtrlr", "TxEndedMeasurands", "UnknownVariable", None),
        // HeartbeatInterval left out by the station.
    ]});
    assert_eq!(
        decode_checked(&call, "GetVariablesResponse", answer),
        CallReply::Configuration {
            known: vec![
                ConfigurationEntry {
                    key: "MeterValueSampleInterval".into(),
                    readonly: false,
                    value: Some("60".into()),
                },
                ConfigurationEntry {
                    key: "OCPPCommCtrlr.QueueAllMessages".into(),
                    readonly: false,
                    value: Some("true".into()),
                },
            ],
            unknown: vec![
                "NoSuchKey".into(),
                "StopTxnSampledData".into(),
                "HeartbeatInterval".into()
            ],
        }
    );
    // Reading everything: results named by the table's 1.6 keys, the rest in dotted form.
    let all = get(&[]);
    let answer = json!({"getVariableResult": [
        result("AlignedDataCtrlr", "Measurands", "Accepted", Some("Energy.Active.Import.Register")),
        result("AlignedDataCtrlr", "Interval", "Rejected", None),
        result("TxCtrlr", "TxStartPoint", "Accepted", Some("PowerPathClosed")),
    ]});
    let CallReply::Configuration { known, unknown } =
        decode_checked(&all, "GetVariablesResponse", answer)
    else {
        panic!("not a configuration reply")
    };
    assert_eq!(known[0].key, "MeterValuesAlignedData");
    assert_eq!(known[1].key, "TxCtrlr.TxStartPoint");
    assert!(unknown.contains(&"ClockAlignedDataInterval".to_owned()));
    assert_eq!(known.len() + unknown.len(), TABLE.len() + 1);
}

#[test]
fn get_variables_answers_that_break_the_schema_are_bad_responses() {
    let call = get(&["HeartbeatInterval"]);
    let schema = "GetVariablesResponse";
    assert_refused(&call, schema, json!({"getVariableResult": []}));
    assert_refused(&call, schema, json!({}));
    assert_refused(
        &call,
        schema,
        json!({"getVariableResult": [result("OCPPCommCtrlr", "HeartbeatInterval", "Maybe", None)]}),
    );
    assert_refused(
        &call,
        schema,
        json!({"getVariableResult": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}),
    );
    assert_refused(
        &call,
        schema,
        json!({"getVariableResult": [result("OCPPCommCtrlr", "HeartbeatInterval", "Accepted", Some(&"1".repeat(2501)))]}),
    );
    assert_refused(
        &call,
        schema,
        json!({"getVariableResult": [result(&"C".repeat(51), "HeartbeatInterval", "Accepted", Some("1"))]}),
    );
    assert_refused(
        &call,
        schema,
        json!({"getVariableResult": [{
            "attributeStatus": "Accepted",
            "attributeType": "Now",
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
        }]}),
    );
}

#[test]
fn set_variables_statuses_become_configuration_statuses() {
    let call = change("MeterValueSampleInterval", "30");
    let cases = [
        ("Accepted", "Accepted"),
        ("Rejected", "Rejected"),
        ("RebootRequired", "RebootRequired"),
        ("UnknownComponent", "NotSupported"),
        ("UnknownVariable", "NotSupported"),
        ("NotSupportedAttributeType", "NotSupported"),
    ];
    for (attribute_status, status) in cases {
        let answer = json!({"setVariableResult": [result("SampledDataCtrlr", "TxUpdatedInterval", attribute_status, None)]});
        assert_eq!(
            decode_checked(&call, "SetVariablesResponse", answer),
            CallReply::Change {
                status: status.into()
            },
            "{attribute_status}"
        );
    }
    let schema = "SetVariablesResponse";
    assert_refused(&call, schema, json!({"setVariableResult": []}));
    assert_refused(
        &call,
        schema,
        json!({"setVariableResult": [result("SampledDataCtrlr", "TxUpdatedInterval", "Maybe", None)]}),
    );
    assert_refused(
        &call,
        schema,
        json!({"setVariableResult": [{"attributeStatus": "Accepted", "component": {"name": "SampledDataCtrlr"}}]}),
    );
    assert_refused(
        &call,
        schema,
        json!({"setVariableResult": {"attributeStatus": "Accepted"}}),
    );
}

#[test]
fn unmappable_keys_are_answered_without_the_station() {
    assert_eq!(
        answer_without_call(&change("NoSuchKey", "1")),
        Some(Ok(CallReply::Change {
            status: "NotSupported".into()
        }))
    );
    assert_eq!(
        answer_without_call(&change("EVSE@0.Power", "1")),
        Some(Ok(CallReply::Change {
            status: "NotSupported".into()
        }))
    );
    assert_eq!(
        answer_without_call(&get(&["A", "B"])),
        Some(Ok(CallReply::Configuration {
            known: vec![],
            unknown: vec!["A".into(), "B".into()]
        }))
    );
    assert_eq!(answer_without_call(&get(&[])), None);
    assert_eq!(
        answer_without_call(&change("HeartbeatInterval", "60")),
        None
    );
    assert_eq!(
        answer_without_call(&trigger(TriggerKind::Heartbeat, None)),
        None
    );
    // Sent anyway, the stand-in read's answer gives the same local answer.
    let call = change("NoSuchKey", "1");
    let answer = json!({"getVariableResult": [result("OCPPCommCtrlr", "HeartbeatInterval", "Accepted", Some("300"))]});
    assert_eq!(
        decode_checked(&call, "GetVariablesResponse", answer),
        CallReply::Change {
            status: "NotSupported".into()
        }
    );
}

#[test]
fn call_errors_are_refusals_and_other_ids_are_not_answers() {
    let call = change("HeartbeatInterval", "60");
    let text = r#"[4,"cs-3","FormatViolation","bad value",{}]"#;
    let frame = decode_frame(text).unwrap();
    assert_eq!(
        read_answer(&frame, "cs-3", &call),
        Some(Err(CallError::Refused {
            code: "FormatViolation".into(),
            description: "bad value".into()
        }))
    );
    assert_eq!(read_answer(&frame, "cs-4", &call), None);
    let text = r#"[3,"cs-4",{"setVariableResult":[{"attributeStatus":"Accepted","component":{"name":"OCPPCommCtrlr"},"variable":{"name":"HeartbeatInterval"}}]}]"#;
    let frame = decode_frame(text).unwrap();
    assert_eq!(
        read_answer(&frame, "cs-4", &call),
        Some(Ok(CallReply::Change {
            status: "Accepted".into()
        }))
    );
}
