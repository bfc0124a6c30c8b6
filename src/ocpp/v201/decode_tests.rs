//! The 2.0.1 decode_request: every handled message onto the domain model, the mapping rules
//! (EVSE -> stored connector, multiplier, offline, station transaction ids), and malformed
//! payloads answered with the 2.0.1 error codes and the field's path.

use actors::charge_point::{Request, StationTransaction, TransactionStage};
use actors::exchange::{BootInfo, StatusReport};
use actors::sample::{Location, Measurand, Phase, ReadingContext, Readings, SampleValue, Unit};
use chrono::{TimeZone, Utc};
use serde_json::value::RawValue;

use super::decode_request;
use super::schema_tests::FIXTURES;
use crate::ocpp::{decode_frame, Frame, PayloadError, Protocol};

pub(super) fn decode(action: &str, json: &str) -> Result<Request, PayloadError> {
    let raw: &RawValue = serde_json::from_str(json).expect("test payload is JSON");
    decode_request(action, raw)
}

/// Asserts the 2.0.1 CALLERROR a payload gets: its code as a 2.0.1 station reads it, and a
/// description starting with the field's path.
fn assert_error(action: &str, json: &str, code: &str, path: &str) {
    let err = decode(action, json).expect_err(json);
    let text = Protocol::Ocpp201.encode_payload_error("u1", &err);
    let Ok(Frame::CallError {
        code: sent,
        description,
        ..
    }) = decode_frame(&text)
    else {
        panic!("{text} is not a CALLERROR")
    };
    assert_eq!(sent, code, "{json}: {err}");
    assert!(
        description.starts_with(&format!("{path}: ")),
        "{json}: description {description:?} does not start with {path:?}"
    );
}

fn fixture(action: &str, nth: usize) -> &'static str {
    FIXTURES
        .iter()
        .filter(|(a, _)| *a == action)
        .nth(nth)
        .map(|(_, json)| *json)
        .unwrap_or_else(|| panic!("no fixture {action} #{nth}"))
}

fn station_transaction(json: &str) -> StationTransaction {
    match decode("TransactionEvent", json).unwrap() {
        Request::StationTransaction(event) => event,
        other => panic!("{other:?}"),
    }
}

fn meter_values(sampled: &str) -> Readings {
    let json = format!(
        r#"{{"evseId":3,"meterValue":[{{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{sampled}]}}]}}"#
    );
    match decode("MeterValues", &json).unwrap() {
        Request::MeterValues {
            connector_id: 3,
            transaction_id: None,
            readings,
        } => readings,
        other => panic!("{other:?}"),
    }
}

#[test]
fn boot_notification_maps_onto_boot_info() {
    assert_eq!(
        decode("BootNotification", fixture("BootNotification", 0)).unwrap(),
        Request::Boot(BootInfo {
            vendor: "VendorY".into(),
            model: "M201".into(),
            serial_number: Some("SN-1".into()),
            firmware_version: Some("2.0.1-a".into()),
            iccid: Some("8931".into()),
            imsi: Some("2620".into()),
            ..BootInfo::default()
        })
    );
}

#[test]
fn status_notification_maps_the_evse_onto_the_stored_connector() {
    assert_eq!(
        decode("StatusNotification", fixture("StatusNotification", 0)).unwrap(),
        Request::StatusNotification(StatusReport {
            connector_id: 2,
            status: "Occupied".into(),
            error_code: "NoError".into(),
            info: Some("connectorId 1".into()),
            timestamp: Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()),
            vendor_id: None,
            vendor_error_code: None,
        })
    );
}

#[test]
fn small_requests_are_decoded() {
    assert_eq!(decode("Heartbeat", "{}").unwrap(), Request::Heartbeat);
    assert_eq!(
        decode("Authorize", fixture("Authorize", 0)).unwrap(),
        Request::Authorize {
            id_tag: "04A2B3C4".into()
        }
    );
    assert_eq!(
        decode("LogStatusNotification", fixture("LogStatusNotification", 0)).unwrap(),
        Request::DiagnosticsStatus {
            status: "Uploaded".into()
        }
    );
    assert_eq!(
        decode(
            "FirmwareStatusNotification",
            fixture("FirmwareStatusNotification", 0)
        )
        .unwrap(),
        Request::FirmwareStatus {
            status: "Installed".into()
        }
    );
    assert_eq!(
        decode("DataTransfer", fixture("DataTransfer", 0)).unwrap(),
        Request::DataTransfer {
            vendor_id: "com.example".into(),
            message_id: Some("m".into()),
            data: Some(r#"{"a":[1,2]}"#.into()),
        }
    );
    for (action, kind) in [
        ("NotifyEvent", "event"),
        ("SecurityEventNotification", "security event"),
    ] {
        match decode(action, fixture(action, 0)).unwrap() {
            Request::Notice { kind: k, detail } => {
                assert_eq!(k, kind);
                assert!(!detail.is_empty());
            }
            other => panic!("{action}: {other:?}"),
        }
    }
}

#[test]
fn transaction_events_name_the_station_transaction() {
    let started = station_transaction(fixture("TransactionEvent", 0));
    assert_eq!(started.stage, TransactionStage::Started);
    assert_eq!(
        started.station_transaction_id,
        "f1e2d3c4-b5a6-4789-8abc-def012345678"
    );
    assert_eq!(started.connector_id, Some(1));
    assert_eq!(started.id_tag.as_deref(), Some("TAG1"));
    assert_eq!(started.seq_no, 0);
    assert_eq!(started.trigger, "CablePluggedIn");
    assert!(!started.readings.offline);
    let begin = &started.readings.samples[0];
    assert_eq!(begin.value, SampleValue::Number(1200.0));
    assert_eq!(begin.connector_id, 1);
    assert_eq!(
        begin.transaction_id, None,
        "the actor fills in the integer id"
    );
    assert_eq!(begin.context, ReadingContext::TransactionBegin);

    let updated = station_transaction(fixture("TransactionEvent", 1));
    assert_eq!(updated.stage, TransactionStage::Updated);
    assert_eq!(
        updated.connector_id, None,
        "no evse: the actor uses the known one"
    );
    assert!(updated.readings.offline);
    let [voltage, power, register] = updated.readings.samples.as_slice() else {
        panic!("{:?}", updated.readings)
    };
    assert_eq!(
        (
            voltage.measurand,
            voltage.phase,
            voltage.location,
            voltage.context
        ),
        (
            Measurand::Voltage,
            Some(Phase::L2N),
            Location::Inlet,
            ReadingContext::SampleClock
        )
    );
    assert_eq!(power.value, SampleValue::Number(7400.0), "multiplier 3");
    assert_eq!(power.unit, Unit::W);
    assert_eq!(
        register.value,
        SampleValue::Number(1500.0),
        "a signed value is stored as its reading"
    );

    let ended = station_transaction(fixture("TransactionEvent", 2));
    assert_eq!(ended.stage, TransactionStage::Ended);
    assert_eq!(ended.stopped_reason.as_deref(), Some("EVDisconnected"));
    assert_eq!(
        ended.readings.samples[0].value,
        SampleValue::Number(20500.0)
    );
}

#[test]
fn a_transaction_may_run_without_a_token() {
    let event = station_transaction(
        r#"{"eventType":"Started","timestamp":"2024-05-01T10:00:00Z","triggerReason":"CablePluggedIn","seqNo":0,
            "transactionInfo":{"transactionId":"T-1"},"evse":{"id":2},"idToken":{"idToken":"","type":"NoAuthorization"}}"#,
    );
    assert_eq!(event.id_tag, None);
    assert!(event.readings.samples.is_empty());
    assert_eq!(event.connector_id, Some(2));
}

#[test]
fn every_measurand_is_stored_with_its_unit() {
    let measurands = [
        ("Current.Export", Unit::A),
        ("Current.Import", Unit::A),
        ("Current.Offered", Unit::A),
        ("Energy.Active.Export.Register", Unit::Wh),
        ("Energy.Active.Import.Register", Unit::Wh),
        ("Energy.Reactive.Export.Register", Unit::Varh),
        ("Energy.Reactive.Import.Register", Unit::Varh),
        ("Energy.Active.Export.Interval", Unit::Wh),
        ("Energy.Active.Import.Interval", Unit::Wh),
        ("Energy.Active.Net", Unit::Wh),
        ("Energy.Reactive.Export.Interval", Unit::Varh),
        ("Energy.Reactive.Import.Interval", Unit::Varh),
        ("Energy.Reactive.Net", Unit::Varh),
        ("Energy.Apparent.Net", Unit::Vah),
        ("Energy.Apparent.Import", Unit::Vah),
        ("Energy.Apparent.Export", Unit::Vah),
        ("Frequency", Unit::Hertz),
        ("Power.Active.Export", Unit::W),
        ("Power.Active.Import", Unit::W),
        ("Power.Factor", Unit::Dimensionless),
        ("Power.Offered", Unit::W),
        ("Power.Reactive.Export", Unit::Var),
        ("Power.Reactive.Import", Unit::Var),
        ("SoC", Unit::Percent),
        ("Voltage", Unit::V),
    ];
    let sampled: Vec<String> = measurands
        .iter()
        .map(|(m, _)| format!(r#"{{"value":2,"measurand":"{m}"}}"#))
        .collect();
    let readings = meter_values(&sampled.join(","));
    assert!(readings.rejected.is_empty(), "{:?}", readings.rejected);
    assert_eq!(readings.samples.len(), measurands.len());
    for (sample, (name, unit)) in readings.samples.iter().zip(&measurands) {
        assert_eq!(sample.measurand.as_str(), *name);
        assert_eq!(&sample.unit, unit, "{name}");
        assert_eq!(sample.connector_id, 3);
    }
}

#[test]
fn phases_locations_contexts_and_multipliers_are_read() {
    for phase in Phase::ALL {
        let readings = meter_values(&format!(
            r#"{{"value":230,"measurand":"Voltage","phase":"{phase}"}}"#
        ));
        assert_eq!(readings.samples[0].phase, Some(*phase));
    }
    for location in Location::ALL {
        let readings = meter_values(&format!(r#"{{"value":1,"location":"{location}"}}"#));
        assert_eq!(readings.samples[0].location, *location);
    }
    for context in ReadingContext::ALL {
        let readings = meter_values(&format!(r#"{{"value":1,"context":"{context}"}}"#));
        assert_eq!(readings.samples[0].context, *context);
    }
    let readings = meter_values(
        r#"{"value":15,"unitOfMeasure":{"unit":"kWh","multiplier":-1}},
           {"value":2,"measurand":"Power.Active.Import","unitOfMeasure":{"multiplier":3}},
           {"value":-3.5,"measurand":"Current.Export"},
           {"value":"7.25","measurand":"SoC"}"#,
    );
    let values: Vec<SampleValue> = readings.samples.iter().map(|s| s.value.clone()).collect();
    assert_eq!(
        values,
        vec![
            SampleValue::Number(1500.0),
            SampleValue::Number(2000.0),
            SampleValue::Number(-3.5),
            SampleValue::Number(7.25),
        ]
    );
}

#[test]
fn one_bad_sampled_value_keeps_its_siblings() {
    let readings = meter_values(
        r#"{"value":1,"measurand":"Flux.Capacitance"},{"value":2,"measurand":"Voltage"},{"value":"x"}"#,
    );
    assert_eq!(readings.samples.len(), 1);
    assert_eq!(readings.rejected.len(), 2);
    assert!(readings.rejected[0].starts_with("meterValue[0].sampledValue[0].measurand"));
    assert!(readings.rejected[1].starts_with("meterValue[0].sampledValue[2].value"));
}

#[test]
fn malformed_payloads_get_2_0_1_codes_and_paths() {
    let tx = |body: &str| {
        format!(
            r#"{{"eventType":"Updated","timestamp":"2024-05-01T10:00:00Z","triggerReason":"Trigger","seqNo":1,{body}}}"#
        )
    };
    let err = decode("Heartbeat", "[]").expect_err("an array");
    assert!(Protocol::Ocpp201
        .encode_payload_error("u0", &err)
        .starts_with(r#"[4,"u0","FormatViolation","payload must be a JSON object"#));
    assert_error(
        "TransactionEvent",
        &tx(r#""evse":{"id":1}"#),
        "OccurrenceConstraintViolation",
        "transactionInfo",
    );
    assert_error(
        "TransactionEvent",
        &tx(r#""transactionInfo":{}"#),
        "OccurrenceConstraintViolation",
        "transactionInfo.transactionId",
    );
    assert_error(
        "TransactionEvent",
        &tx(r#""transactionInfo":{"transactionId":7}"#),
        "TypeConstraintViolation",
        "transactionInfo.transactionId",
    );
    assert_error(
        "TransactionEvent",
        &tx(&format!(
            r#""transactionInfo":{{"transactionId":"{}"}}"#,
            "x".repeat(37)
        )),
        "PropertyConstraintViolation",
        "transactionInfo.transactionId",
    );
    assert_error(
        "TransactionEvent",
        &tx(r#""transactionInfo":{"transactionId":"T","stoppedReason":"Bored"}"#),
        "PropertyConstraintViolation",
        "transactionInfo.stoppedReason",
    );
    assert_error(
        "TransactionEvent",
        &tx(r#""transactionInfo":{"transactionId":"T"},"evse":{"id":0}"#),
        "PropertyConstraintViolation",
        "evse.id",
    );
    assert_error(
        "TransactionEvent",
        &tx(
            r#""transactionInfo":{"transactionId":"T"},"meterValue":[{"timestamp":"yesterday","sampledValue":[{"value":1}]}]"#,
        ),
        "PropertyConstraintViolation",
        "meterValue[0].timestamp",
    );
    assert_error(
        "TransactionEvent",
        &tx(
            r#""transactionInfo":{"transactionId":"T"},"meterValue":[{"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":1,"unitOfMeasure":{"multiplier":1.5}}]}]"#,
        ),
        "TypeConstraintViolation",
        "meterValue[0].sampledValue[0].unitOfMeasure.multiplier",
    );
    assert_error(
        "TransactionEvent",
        &tx(r#""transactionInfo":{"transactionId":"T"},"idToken":{"idToken":"A","type":"Retina"}"#),
        "PropertyConstraintViolation",
        "idToken.type",
    );
    assert_error(
        "StatusNotification",
        r#"{"timestamp":"2024-05-01T10:00:00Z","connectorStatus":"Charging","evseId":1,"connectorId":1}"#,
        "PropertyConstraintViolation",
        "connectorStatus",
    );
    assert_error(
        "StatusNotification",
        r#"{"timestamp":"2024-05-01T10:00:00Z","connectorStatus":"Available","connectorId":1}"#,
        "OccurrenceConstraintViolation",
        "evseId",
    );
    assert_error(
        "MeterValues",
        r#"{"evseId":-1,"meterValue":[]}"#,
        "PropertyConstraintViolation",
        "evseId",
    );
    assert_error(
        "BootNotification",
        r#"{"reason":"PowerUp","chargingStation":{"model":"M"}}"#,
        "OccurrenceConstraintViolation",
        "chargingStation.vendorName",
    );
    assert_error(
        "NotifyEvent",
        r#"{"generatedAt":"2024-05-01T10:00:00Z","seqNo":0,"eventData":[]}"#,
        "OccurrenceConstraintViolation",
        "eventData[0]",
    );
    assert_error(
        "Authorize",
        r#"{"idToken":{"idToken":"A"}}"#,
        "OccurrenceConstraintViolation",
        "idToken.type",
    );
}

#[test]
fn unhandled_actions_are_not_implemented_and_csms_actions_not_supported() {
    for (action, code) in [
        ("NotifyReport", "NotImplemented"),
        ("FlyToTheMoon", "NotImplemented"),
        ("StartTransaction", "NotImplemented"),
        ("GetVariables", "NotSupported"),
        ("RequestStartTransaction", "NotSupported"),
    ] {
        let err = decode(action, "{}").expect_err(action);
        assert_eq!(Protocol::Ocpp201.error_code(err.code()), code, "{action}");
    }
}
