//! `decode_request` for every action a charge point may send, plus known-but-unsupported and
//! unknown actions. The first input byte picks the action, the rest is the payload text.
//!
//! Checks beyond "no panic":
//! - every refusal becomes a well-formed CALLERROR with a known error code;
//! - every decoded numeric sample is finite (NaN or infinity would poison roll-ups and rules);
//! - MeterValues / StopTransaction account for each sampled value exactly once, as a sample or
//!   as a rejection.
#![no_main]

use actors::charge_point::Request;
use actors::sample::Readings;
use libfuzzer_sys::fuzz_target;
use ocpp_meter::ocpp::{decode_frame, decode_request, encode_payload_error, ErrorCode, Frame};
use serde_json::value::RawValue;
use serde_json::Value;

/// Every action `decode_request` handles, two it knows but does not support, and unknown ones.
const ACTIONS: &[&str] = &[
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
    "Reset",
    "",
    "NoSuchAction",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let action = ACTIONS[usize::from(selector) % ACTIONS.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // decode_frame hands decode_request a RawValue: only well-formed JSON gets this far.
    let Ok(payload) = serde_json::from_str::<&RawValue>(text) else {
        return;
    };
    match decode_request(action, payload) {
        Ok(request) => {
            // How many sampled values the payload holds; `None` when serde_json's `Value`
            // cannot hold the payload (e.g. a number beyond f64 in an ignored unknown field,
            // which the typed decoder rightly skips).
            let list = |field: &str| -> Option<usize> {
                let Value::Object(payload) = serde_json::from_str::<Value>(text).ok()? else {
                    return Some(0);
                };
                let Some(Value::Array(values)) = payload.get(field) else {
                    return Some(0);
                };
                let count = values
                    .iter()
                    .map(|mv| match mv.get("sampledValue") {
                        Some(Value::Array(svs)) => svs.len(),
                        _ => 0,
                    })
                    .sum();
                Some(count)
            };
            match &request {
                Request::MeterValues { readings, .. } => check(readings, list("meterValue")),
                Request::StopTransaction { readings, .. } => {
                    check(readings, list("transactionData"))
                }
                _ => {}
            }
        }
        Err(err) => {
            let reply = encode_payload_error("fz-1", &err);
            match decode_frame(&reply) {
                Ok(Frame::CallError {
                    unique_id, code, ..
                }) => {
                    assert_eq!(unique_id, "fz-1");
                    assert!(ErrorCode::parse(&code).is_some(), "unknown code in {reply}");
                }
                other => panic!("CALLERROR {reply:?} does not decode as one: {other:?}"),
            }
        }
    }
});

fn check(readings: &Readings, sampled_values: Option<usize>) {
    for sample in &readings.samples {
        if let Some(v) = sample.number() {
            assert!(v.is_finite(), "non-finite sample {sample:?}");
        }
    }
    let Some(sampled_values) = sampled_values else {
        return;
    };
    assert_eq!(
        readings.samples.len() + readings.rejected.len(),
        sampled_values,
        "sampled values lost or invented: {readings:?}"
    );
}
