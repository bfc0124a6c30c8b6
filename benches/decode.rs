//! OCPP-J frame decode + MeterValues parse: what every incoming MeterValues (1.6) or
//! TransactionEvent Updated (2.0.1) costs before the charge point actor sees it. Throughput is
//! in sampled values per second.
// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ocpp_meter::ocpp::{decode_frame, decode_request, Frame, Protocol};
use std::hint::black_box;

mod common;

fn decode(c: &mut Criterion) {
    let text = common::meter_values_frame("2025-01-01T10:00:00.000Z");
    assert_eq!(
        common::decode_samples(&text).len(),
        common::VALUES_PER_MESSAGE
    );
    let mut group = c.benchmark_group("ocpp");
    group.throughput(Throughput::Elements(common::VALUES_PER_MESSAGE as u64));
    group.bench_function("decode_frame", |b| {
        b.iter(|| decode_frame(black_box(&text)).is_ok())
    });
    group.bench_function("decode_frame+decode_request(MeterValues, 10 values)", |b| {
        b.iter(|| match decode_frame(black_box(&text)) {
            Ok(Frame::Call {
                action, payload, ..
            }) => decode_request(&action, payload).is_ok(),
            _ => false,
        })
    });
    let text = transaction_event_frame();
    let samples = match decode_frame(&text) {
        Ok(Frame::Call {
            action, payload, ..
        }) => match Protocol::Ocpp201.decode_request(&action, payload) {
            Ok(actors::charge_point::Request::StationTransaction(event)) => {
                event.readings.samples.len()
            }
            _ => 0,
        },
        _ => 0,
    };
    assert_eq!(samples, common::VALUES_PER_MESSAGE);
    group.bench_function(
        "decode_frame+decode_request(2.0.1 TransactionEvent, 10 values)",
        |b| {
            b.iter(|| match decode_frame(black_box(&text)) {
                Ok(Frame::Call {
                    action, payload, ..
                }) => Protocol::Ocpp201.decode_request(&action, payload).is_ok(),
                _ => false,
            })
        },
    );
    group.finish();
}

/// A 2.0.1 TransactionEvent Updated carrying the 1.6 frame's ten sampled values in 2.0.1 form
/// (numbers, `unitOfMeasure`), so the two benchmarks compare like with like. (`decode` asserts
/// that it decodes into all ten values.)
fn transaction_event_frame() -> String {
    let frame: serde_json::Value =
        serde_json::from_str(&common::meter_values_frame("2025-01-01T10:00:00.000Z"))
            .unwrap_or_default();
    let sampled: Vec<serde_json::Value> = frame[3]["meterValue"][0]["sampledValue"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut v| {
            if let Some(fields) = v.as_object_mut() {
                let number: f64 = fields["value"]
                    .as_str()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0.0);
                fields.insert("value".into(), serde_json::json!(number));
                fields.remove("format");
                if let Some(unit) = fields.remove("unit") {
                    fields.insert("unitOfMeasure".into(), serde_json::json!({ "unit": unit }));
                }
            }
            v
        })
        .collect();
    serde_json::json!([2, "b1", "TransactionEvent", {
        "eventType": "Updated", "timestamp": "2025-01-01T10:00:00.000Z",
        "triggerReason": "MeterValuePeriodic", "seqNo": 7,
        "transactionInfo": {"transactionId": "0b5c7b8e-2d7c-4a57-9a8e-1f0c2d3e4f50"},
        "meterValue": [{"timestamp": "2025-01-01T10:00:00.000Z", "sampledValue": sampled}]
    }])
    .to_string()
}

criterion_group!(benches, decode);
criterion_main!(benches);
