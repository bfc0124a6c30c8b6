//! OCPP-J frame decode + MeterValues parse: what every incoming MeterValues costs before the
//! charge point actor sees it. Throughput is in sampled values per second.
// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ocpp_meter::ocpp::{decode_frame, decode_request, Frame};
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
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
