//! MeterValues and StopTransaction readings: defaults, leniency, normalisation, per-value
//! rejection.

use actors::charge_point::Request;
use actors::sample::{
    Location, Measurand, Phase, ReadingContext, Readings, Sample, SampleValue, Unit,
};
use chrono::{TimeZone, Utc};

use super::decode_tests::decode;

/// Decodes a MeterValues for connector 2, transaction 77, with one meterValue holding
/// `sampled` (a JSON array) at `timestamp`.
fn meter_values_at(timestamp: &str, sampled: &str) -> Readings {
    let json = format!(
        r#"{{"connectorId":2,"transactionId":77,"meterValue":[{{"timestamp":"{timestamp}","sampledValue":{sampled}}}]}}"#
    );
    match decode("MeterValues", &json) {
        Ok(Request::MeterValues {
            connector_id: 2,
            transaction_id: Some(77),
            readings,
        }) => readings,
        other => panic!("{json}: {other:?}"),
    }
}

fn meter_values(sampled: &str) -> Readings {
    meter_values_at("2024-05-01T10:00:00Z", sampled)
}

fn only(readings: &Readings) -> &Sample {
    assert!(readings.rejected.is_empty(), "{:?}", readings.rejected);
    assert_eq!(readings.samples.len(), 1, "{readings:?}");
    &readings.samples[0]
}

#[test]
fn spec_defaults_apply_when_fields_are_missing() {
    let r = meter_values(r#"[{"value":"1234"}]"#);
    let s = only(&r);
    assert_eq!(s.measurand, Measurand::EnergyActiveImportRegister);
    assert_eq!(s.context, ReadingContext::SamplePeriodic);
    assert_eq!(s.location, Location::Outlet);
    assert_eq!(s.phase, None);
    assert_eq!(s.unit, Unit::Wh);
    assert_eq!(s.value, SampleValue::Number(1234.0));
    assert_eq!(s.connector_id, 2);
    assert_eq!(s.transaction_id, Some(77));
    assert_eq!(
        s.timestamp,
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
    );
    assert_eq!(r.naive_timestamps, 0);
}

#[test]
fn all_fields_are_read() {
    let r = meter_values(
        r#"[{"value":"230.1","context":"Sample.Clock","format":"Raw","measurand":"Voltage",
             "phase":"L2-N","location":"Inlet","unit":"V"}]"#,
    );
    let s = only(&r);
    assert_eq!(
        (s.measurand, s.phase, s.location, s.context),
        (
            Measurand::Voltage,
            Some(Phase::L2N),
            Location::Inlet,
            ReadingContext::SampleClock
        )
    );
    assert_eq!((s.unit.clone(), s.number()), (Unit::V, Some(230.1)));
}

#[test]
fn numeric_values_are_accepted() {
    let r = meter_values(r#"[{"value":12.5,"measurand":"Current.Import","unit":"A"},{"value":7}]"#);
    assert_eq!(r.samples.len(), 2);
    assert_eq!(r.samples[0].number(), Some(12.5));
    assert_eq!(r.samples[1].number(), Some(7.0));
}

/// Found by the `sampled_value` fuzz target: serde_json's default float parser may miss the
/// nearest f64 by one ulp for long or far-exponent numbers, so a JSON-number value came out
/// different from the same text sent as a string (which `str::parse` reads exactly).
/// The `float_roundtrip` feature makes both exact.
#[test]
fn numeric_values_are_read_exactly() {
    for text in [
        "1.965590344616256e-107",
        "1.7976931348623157e308",
        "5e-324",
        "12345.678901234567",
    ] {
        let want = text.parse::<f64>().unwrap();
        let as_number = only(&meter_values(&format!(r#"[{{"value":{text}}}]"#))).clone();
        assert_eq!(
            as_number.value,
            SampleValue::Number(want),
            "{text} as a JSON number"
        );
        let as_string = only(&meter_values(&format!(r#"[{{"value":"{text}"}}]"#))).clone();
        assert_eq!(
            as_string.value,
            SampleValue::Number(want),
            "{text} as a string"
        );
    }
}

#[test]
fn missing_unit_takes_the_measurand_default() {
    let r = meter_values(r#"[{"value":"231","measurand":"Voltage"}]"#);
    assert_eq!(only(&r).unit, Unit::V);
    let r = meter_values(r#"[{"value":"21","measurand":"Temperature"}]"#);
    assert_eq!(only(&r).unit, Unit::Celsius);
}

#[test]
fn unknown_units_are_kept_raw() {
    let r = meter_values(r#"[{"value":"50","measurand":"Frequency","unit":"Hertz"}]"#);
    assert_eq!(only(&r).unit, Unit::Hertz);
    let r = meter_values(r#"[{"value":"50","measurand":"Frequency","unit":"Furlongs"}]"#);
    let s = only(&r);
    assert_eq!(s.unit, Unit::Other("Furlongs".into()));
    assert_eq!(s.number(), Some(50.0));
}

#[test]
fn both_celsius_spellings_are_celsius() {
    let r = meter_values(
        r#"[{"value":"21","measurand":"Temperature","unit":"Celcius"},
            {"value":"22","measurand":"Temperature","unit":"Celsius"}]"#,
    );
    assert!(r.rejected.is_empty());
    assert!(r.samples.iter().all(|s| s.unit == Unit::Celsius));
    assert_eq!(r.samples[1].number(), Some(22.0));
}

#[test]
fn units_are_normalised() {
    let r = meter_values(
        r#"[{"value":"7.4","measurand":"Power.Active.Import","unit":"kW"},
            {"value":"1.5","unit":"kWh"},
            {"value":"212","measurand":"Temperature","unit":"Fahrenheit"}]"#,
    );
    assert!(r.rejected.is_empty());
    assert_eq!(
        (r.samples[0].unit.clone(), r.samples[0].number()),
        (Unit::W, Some(7400.0))
    );
    assert_eq!(
        (r.samples[1].unit.clone(), r.samples[1].number()),
        (Unit::Wh, Some(1500.0))
    );
    assert_eq!(r.samples[2].unit, Unit::Celsius);
    let celsius = r.samples[2].number().unwrap();
    assert!((celsius - 100.0).abs() < 1e-9, "{celsius}");
}

#[test]
fn empty_lists_are_accepted() {
    let r = meter_values("[]");
    assert_eq!(r, Readings::default());
    let req = decode("MeterValues", r#"{"connectorId":0,"meterValue":[]}"#).unwrap();
    assert_eq!(
        req,
        Request::MeterValues {
            connector_id: 0,
            transaction_id: None,
            readings: Readings::default()
        }
    );
}

#[test]
fn naive_timestamps_are_utc_and_counted() {
    let r = meter_values_at("2024-05-01T10:00:00", r#"[{"value":"1"}]"#);
    assert_eq!(r.naive_timestamps, 1);
    assert_eq!(
        only(&r).timestamp,
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
    );
    let r = meter_values_at("2024-05-01T10:00:00.123", r#"[{"value":"1"}]"#);
    assert_eq!(r.naive_timestamps, 1);
    assert_eq!(only(&r).timestamp.timestamp_subsec_millis(), 123);
}

#[test]
fn enum_values_are_trimmed() {
    let r = meter_values(
        r#"[{"value":"1","phase":" L1 ","context":"Sample.Periodic\n","measurand":" Voltage",
             "location":"Outlet ","format":" Raw","unit":" V "}]"#,
    );
    let s = only(&r);
    assert_eq!(s.phase, Some(Phase::L1));
    assert_eq!(s.context, ReadingContext::SamplePeriodic);
    assert_eq!(s.unit, Unit::V);
}

#[test]
fn one_bad_value_keeps_its_siblings() {
    let r = meter_values(
        r#"[{"value":"1"},
            {"value":"2","measurand":"Energy.Teleported"},
            {"value":"3"},
            {"value":"abc"},
            {"value":"4","phase":"L4"},
            {"value":"5","location":"Roof"},
            {"value":"6","context":"Whim"},
            {"value":"7","format":"Base64"},
            {"value":"NaN"},
            {"value":"inf"},
            {"value":"8"}]"#,
    );
    let kept: Vec<f64> = r.samples.iter().filter_map(Sample::number).collect();
    assert_eq!(kept, vec![1.0, 3.0, 8.0]);
    assert_eq!(r.rejected.len(), 8, "{:?}", r.rejected);
    assert!(r.rejected[0].starts_with("meterValue[0].sampledValue[1].measurand: "));
    assert!(r.rejected[0].contains("Energy.Teleported"));
    assert!(r.rejected[1].starts_with("meterValue[0].sampledValue[3].value: "));
    assert!(r.rejected[2].starts_with("meterValue[0].sampledValue[4].phase: "));
    assert!(r.rejected[3].starts_with("meterValue[0].sampledValue[5].location: "));
    assert!(r.rejected[4].starts_with("meterValue[0].sampledValue[6].context: "));
    assert!(r.rejected[5].starts_with("meterValue[0].sampledValue[7].format: "));
    assert!(r.rejected[6].starts_with("meterValue[0].sampledValue[8].value: "));
    assert!(r.rejected[7].starts_with("meterValue[0].sampledValue[9].value: "));
}

#[test]
fn empty_optional_enums_count_as_absent() {
    let r = meter_values(r#"[{"value":"1","phase":"","location":" "}]"#);
    let s = only(&r);
    assert_eq!((s.phase, s.location), (None, Location::Outlet));
}

#[test]
fn signed_data_is_kept_verbatim() {
    let r = meter_values(
        r#"[{"value":"OCMF|{\"RD\":[{\"RV\":1.5}]}|sig","format":"SignedData","unit":"kWh"},
            {"value":12,"format":"SignedData"}]"#,
    );
    assert_eq!(r.samples.len(), 1);
    let s = &r.samples[0];
    assert_eq!(
        s.value,
        SampleValue::Signed(r#"OCMF|{"RD":[{"RV":1.5}]}|sig"#.into())
    );
    assert_eq!(s.unit, Unit::Wh);
    assert!(r.rejected[0].starts_with("meterValue[0].sampledValue[1].value: "));
}

#[test]
fn several_meter_values_keep_their_own_timestamps() {
    let json = r#"{"connectorId":1,"meterValue":[
        {"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"1"}]},
        {"timestamp":"2024-05-01T10:01:00","sampledValue":[{"value":"2"},{"value":"x"}]}]}"#;
    let Ok(Request::MeterValues { readings, .. }) = decode("MeterValues", json) else {
        panic!()
    };
    assert_eq!(readings.samples.len(), 2);
    assert_eq!(
        readings.samples[1].timestamp,
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 1, 0).unwrap()
    );
    assert_eq!(readings.naive_timestamps, 1);
    assert_eq!(
        readings.rejected,
        vec![r#"meterValue[1].sampledValue[1].value: "x" is not a number"#.to_owned()]
    );
}

#[test]
fn stop_transaction_carries_its_transaction_data() {
    let json = r#"{"transactionId":4711,"idTag":"TAG1","meterStop":20500,"timestamp":"2024-05-01T11:00:00Z",
        "reason":" EVDisconnected","transactionData":[
        {"timestamp":"2024-05-01T10:00:00Z","sampledValue":[{"value":"10","unit":"kWh","context":"Transaction.Begin"}]},
        {"timestamp":"2024-05-01T11:00:00Z","sampledValue":[{"value":"20.5","unit":"kWh","context":"Transaction.End"},{"value":"?"}]}]}"#;
    let req = decode("StopTransaction", json).unwrap();
    let Request::StopTransaction {
        transaction_id,
        id_tag,
        meter_stop,
        timestamp,
        reason,
        readings,
    } = req
    else {
        panic!("{req:?}")
    };
    assert_eq!(transaction_id, 4711);
    assert_eq!(id_tag.as_deref(), Some("TAG1"));
    assert_eq!(meter_stop, 20500);
    assert_eq!(
        timestamp,
        Utc.with_ymd_and_hms(2024, 5, 1, 11, 0, 0).unwrap()
    );
    assert_eq!(reason.as_deref(), Some("EVDisconnected"));
    assert_eq!(readings.samples.len(), 2);
    assert!(readings
        .samples
        .iter()
        .all(|s| s.connector_id == 0 && s.transaction_id == Some(4711) && s.unit == Unit::Wh));
    assert_eq!(readings.samples[1].number(), Some(20500.0));
    assert_eq!(readings.samples[1].context, ReadingContext::TransactionEnd);
    assert_eq!(readings.rejected.len(), 1);
    assert!(readings.rejected[0].starts_with("transactionData[1].sampledValue[1].value: "));
}

#[test]
fn stop_transaction_without_data_has_no_readings() {
    let req = decode(
        "StopTransaction",
        r#"{"transactionId":1,"meterStop":5,"timestamp":"2024-05-01T10:00:00Z"}"#,
    )
    .unwrap();
    assert!(
        matches!(req, Request::StopTransaction { readings, id_tag: None, reason: None, .. } if readings == Readings::default())
    );
}

#[test]
fn bad_transaction_data_timestamp_names_its_path() {
    let err = decode(
        "StopTransaction",
        r#"{"transactionId":1,"meterStop":5,"timestamp":"2024-05-01T10:00:00Z",
            "transactionData":[{"timestamp":"later","sampledValue":[]}]}"#,
    )
    .unwrap_err();
    assert!(err
        .description()
        .starts_with("transactionData[0].timestamp: "));
}
