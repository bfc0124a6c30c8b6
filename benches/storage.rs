//! Sample encoding for Redis and the writer's flush: what storing one buffer flush costs the
//! server before the pipeline leaves for Redis. Throughput is in samples per second.
// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::collections::HashSet;
use std::hint::black_box;

use actors::id::ChargePointId;
use actors::sample::{Measurand, Phase};
use actors::store::chunk;
use actors::writer::{self, WriteBatch};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deadpool_redis::redis;

mod common;

/// Samples per buffer flush (`buffer` flushes at 100 samples).
const FLUSH_SAMPLES: usize = 100;

/// The writer's own pipeline building for one flush of one charge point. A fresh expiry set
/// each time, so every iteration pays the `EXPIREAT` of a new chunk, as a flush opening an
/// hour does.
fn build_pipeline(flush: &WriteBatch) -> (redis::Pipeline, u64) {
    writer::build_pipeline(&[flush], 7, &mut HashSet::new())
}

fn storage(c: &mut Criterion) {
    let batch = common::samples(FLUSH_SAMPLES / common::VALUES_PER_MESSAGE);
    assert_eq!(batch.len(), FLUSH_SAMPLES);

    #[allow(clippy::expect_used)] // a literal, valid id
    let charge_point = ChargePointId::parse("CP-000042").expect("valid id");
    let unwritten = std::sync::Arc::new(actors::backlog::Backlog::default());
    let flush = WriteBatch::samples(charge_point, batch.clone(), Vec::new(), None, 0, &unwritten);

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(FLUSH_SAMPLES as u64));
    group.bench_function("encode_block(100 samples)", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            out.clear();
            chunk::encode_block(black_box(&batch), &mut out);
            out.len()
        })
    });
    group.bench_function("writer flush pipeline(100 samples)", |b| {
        b.iter(|| build_pipeline(black_box(&flush)).1)
    });
    group.bench_function("writer flush pipeline + wire bytes(100 samples)", |b| {
        b.iter(|| {
            let (pipe, _) = build_pipeline(black_box(&flush));
            pipe.get_packed_pipeline().len()
        })
    });

    // One charge point's hour at a 10 s interval: 360 MeterValues, 3,600 samples, appended in
    // 36 flushes of 100 samples; what a meter-values read of that hour decodes.
    let hour = common::samples(360);
    let mut chunk_bytes = Vec::new();
    for flush in hour.chunks(FLUSH_SAMPLES) {
        chunk::encode_block(flush, &mut chunk_bytes);
    }
    let (decoded, error) = chunk::decode_chunk(&chunk_bytes);
    assert!(error.is_none() && decoded.len() == hour.len());
    group.throughput(Throughput::Elements(hour.len() as u64));
    group.bench_function("decode_chunk(hour, 3600 samples)", |b| {
        b.iter(|| chunk::decode_chunk(black_box(&chunk_bytes)).0.len())
    });
    // The same hour read for one series (`measurand=Voltage&phase=L1-N`, issue 5 target 5): the
    // filter is applied while decoding, so only that series' samples are built.
    let one_series = chunk::SampleFilter {
        measurand: Some(Measurand::Voltage),
        phase: Some(Phase::L1N),
        ..chunk::SampleFilter::default()
    };
    let mut matching = Vec::new();
    assert!(chunk::decode_chunk_matching(&chunk_bytes, &one_series, &mut matching).is_none());
    assert!(!matching.is_empty() && matching.len() < hour.len());
    group.bench_function("decode_chunk_matching(hour, one series of 10)", |b| {
        let mut out = Vec::with_capacity(matching.len());
        b.iter(|| {
            out.clear();
            chunk::decode_chunk_matching(black_box(&chunk_bytes), &one_series, &mut out);
            out.len()
        })
    });
    // What the write-ahead log adds per MeterValues on the request path (outside its lock):
    // one record of 10 samples encoded, stamped with its number and CRC.
    let message = &batch[..common::VALUES_PER_MESSAGE];
    let id = flush.charge_point.clone();
    group.throughput(Throughput::Elements(message.len() as u64));
    group.bench_function("wal record(10 samples)", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            let encoded = actors::wal::record::encode(&id, black_box(message), &[]);
            actors::wal::record::stamp(&encoded, 42, &mut out);
            out.len()
        })
    });
    group.finish();
    println!(
        "hour chunk: {} samples in {} bytes ({:.2} bytes/sample)",
        hour.len(),
        chunk_bytes.len(),
        chunk_bytes.len() as f64 / hour.len() as f64
    );
}

criterion_group!(benches, storage);
criterion_main!(benches);
