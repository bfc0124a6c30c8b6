//! Sample encoding for Redis and the writer's flush: what storing one buffer flush costs the
//! server before the pipeline leaves for Redis. Throughput is in samples per second.
// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;

use actors::sample::Sample;
use actors::store::{chunk, keys};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deadpool_redis::redis;

mod common;

/// Samples per buffer flush (`buffer` flushes at 100 samples).
const FLUSH_SAMPLES: usize = 100;

/// What `RedisWriter::build_pipeline` (private) does for one flush of one charge point, built
/// from the same public pieces: group by (charge point, hour) into one `APPEND` of an encoded
/// block plus its first `EXPIREAT`, and one `HSET` of the newest sample per series. Kept in
/// step with actors/src/writer.rs by hand; it leaves out only the record ops (none in a
/// MeterValues flush) and the remembered-expiry set.
fn build_pipeline(charge_point: &str, samples: &[Sample]) -> (redis::Pipeline, u64) {
    let mut pipe = redis::pipe();
    let mut commands = 0u64;
    let mut chunks: HashMap<(String, i64), Vec<&Sample>> = HashMap::new();
    let mut latest: HashMap<String, HashMap<String, &Sample>> = HashMap::new();
    for sample in samples {
        let hour = sample.timestamp.timestamp().div_euclid(3600);
        chunks
            .entry((keys::raw_chunk(charge_point, hour), hour))
            .or_default()
            .push(sample);
        let newest = latest.entry(keys::latest(charge_point)).or_default();
        let field = keys::latest_field(sample);
        match newest.get(&field) {
            Some(seen) if seen.timestamp > sample.timestamp => {}
            _ => {
                newest.insert(field, sample);
            }
        }
    }
    for ((key, hour), samples) in chunks {
        let mut block = Vec::with_capacity(samples.len() * 6 + 32);
        let owned: Vec<Sample> = samples.into_iter().cloned().collect();
        chunk::encode_block(&owned, &mut block);
        pipe.cmd("APPEND").arg(&key).arg(block).ignore();
        pipe.cmd("EXPIREAT")
            .arg(&key)
            .arg(keys::raw_chunk_expires_at(hour, 7))
            .ignore();
        commands += 2;
    }
    for (key, fields) in latest {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key);
        for (field, sample) in fields {
            cmd.arg(field).arg(chunk::encode_sample_value(sample));
        }
        pipe.add_command(cmd).ignore();
        commands += 1;
    }
    (pipe, commands)
}

fn storage(c: &mut Criterion) {
    let batch = common::samples(FLUSH_SAMPLES / common::VALUES_PER_MESSAGE);
    assert_eq!(batch.len(), FLUSH_SAMPLES);

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
        b.iter(|| build_pipeline(black_box("CP-000042"), black_box(&batch)).1)
    });
    group.bench_function("writer flush pipeline + wire bytes(100 samples)", |b| {
        b.iter(|| {
            let (pipe, _) = build_pipeline(black_box("CP-000042"), black_box(&batch));
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
