//! Realistic inputs shared by the benches: what a three-phase AC charger sends every interval.
//!
//! Each bench includes this module with `mod common;` and uses only part of it.
#![allow(dead_code)]

use actors::charge_point::Request;
use actors::sample::Sample;
use ocpp_meter::ocpp::{decode_frame, decode_request, Frame};

/// Sampled values per MeterValues, as in the load scenario of issue 5.
pub const VALUES_PER_MESSAGE: usize = 10;

/// One OCPP-J MeterValues CALL with ten sampled values (energy register, total power, three
/// currents, three voltages, state of charge, temperature) taken at `timestamp`, in the shape
/// chargers send it: every value a string, units and contexts spelled out.
pub fn meter_values_frame(timestamp: &str) -> String {
    let value = |measurand: &str, phase: Option<&str>, unit: &str, v: &str| {
        let phase = phase
            .map(|p| format!(r#","phase":"{p}""#))
            .unwrap_or_default();
        format!(
            r#"{{"value":"{v}","context":"Sample.Periodic","format":"Raw","measurand":"{measurand}"{phase},"location":"Outlet","unit":"{unit}"}}"#
        )
    };
    let sampled = [
        value("Energy.Active.Import.Register", None, "Wh", "1234567.8"),
        value("Power.Active.Import", None, "kW", "10.95"),
        value("Current.Import", Some("L1"), "A", "15.9"),
        value("Current.Import", Some("L2"), "A", "15.8"),
        value("Current.Import", Some("L3"), "A", "16.1"),
        value("Voltage", Some("L1-N"), "V", "230.4"),
        value("Voltage", Some("L2-N"), "V", "229.8"),
        value("Voltage", Some("L3-N"), "V", "231.2"),
        value("SoC", None, "Percent", "57"),
        value("Temperature", None, "Celsius", "31.5"),
    ];
    format!(
        r#"[2,"19223201","MeterValues",{{"connectorId":1,"transactionId":4711,"meterValue":[{{"timestamp":"{timestamp}","sampledValue":[{}]}}]}}]"#,
        sampled.join(",")
    )
}

/// Decodes one frame the way the WebSocket task does and returns its samples.
pub fn decode_samples(text: &str) -> Vec<Sample> {
    let Ok(Frame::Call {
        action, payload, ..
    }) = decode_frame(text)
    else {
        panic!("not a CALL: {text}");
    };
    match decode_request(&action, payload) {
        Ok(Request::MeterValues { readings, .. }) => {
            assert!(readings.rejected.is_empty(), "{:?}", readings.rejected);
            readings.samples
        }
        other => panic!("not MeterValues: {other:?}"),
    }
}

/// `messages` MeterValues of one charge point, 10 s apart from 10:00:00 UTC, decoded: the
/// samples a buffer holds when it flushes (`messages * 10` of them, all in one UTC hour while
/// `messages <= 360`).
pub fn samples(messages: usize) -> Vec<Sample> {
    (0..messages)
        .flat_map(|i| {
            let secs = i * 10;
            let timestamp = format!(
                "2025-01-01T{:02}:{:02}:{:02}.000Z",
                10 + secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            decode_samples(&meter_values_frame(&timestamp))
        })
        .collect()
}
