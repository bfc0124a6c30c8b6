//! The raw-sample chunk decoder on arbitrary bytes, as a corrupt or hostile Redis value would
//! hand it: `decode_chunk`, `decode_chunk_matching` with a filter taken from the first input
//! bytes, and `decode_sample_value` (the latest-sample hash).
//!
//! Checks beyond "no panic":
//! - no allocation larger than a small multiple of the input: counts and lengths in the bytes
//!   never size a buffer on their own;
//! - at most one sample per input byte;
//! - the filtered decode gives exactly the full decode's matching samples, and the same error;
//! - whatever decodes re-encodes to a block that decodes to the same samples, bit for bit;
//! - `decode_sample_value` answers only for exactly one good sample, and that sample.
#![no_main]

use actors::sample::{Measurand, Phase};
use actors::store::SampleFilter;
use actors::store::{decode_chunk, decode_chunk_matching, decode_sample_value, encode_block};
use chrono::DateTime;
use fuzz_support::{assert_same_samples, LargestAllocation};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Largest allocation a decode of `len` bytes may make: a few `Sample`s' worth per byte.
fn allocation_budget(len: usize) -> usize {
    4096 + len * 512
}

fn filter(selector: &[u8]) -> SampleFilter {
    let byte = |i: usize| selector.get(i).copied().unwrap_or(0);
    let ms = |i: usize| {
        let mut raw = [0u8; 8];
        for (k, b) in raw.iter_mut().enumerate() {
            *b = byte(i + k);
        }
        // Near the times the seeds use (2024-2026), so both ends of a range get exercised.
        1_700_000_000_000 + i64::from_le_bytes(raw).rem_euclid(200_000_000_000)
    };
    let flags = byte(0);
    SampleFilter {
        measurand: (flags & 1 != 0)
            .then(|| Measurand::from_code(byte(1) % 22))
            .flatten(),
        connector_id: (flags & 2 != 0).then_some(u32::from(byte(2) % 4)),
        phase: (flags & 4 != 0)
            .then(|| Phase::from_code(byte(3) % 11))
            .flatten(),
        from: (flags & 8 != 0)
            .then(|| DateTime::from_timestamp_millis(ms(4)))
            .flatten(),
        to: (flags & 16 != 0)
            .then(|| DateTime::from_timestamp_millis(ms(12)))
            .flatten(),
    }
}

fuzz_target!(|data: &[u8]| {
    // The first 20 bytes choose a filter; the chunk is the rest (or all of it when short).
    let (selector, bytes) = if data.len() > 20 {
        data.split_at(20)
    } else {
        (&[][..], data)
    };

    LargestAllocation::reset();
    let (all, error) = decode_chunk(bytes);
    let largest = LargestAllocation::largest();
    assert!(
        largest <= allocation_budget(bytes.len()),
        "decoding {} bytes allocated {largest} bytes at once",
        bytes.len()
    );
    assert!(
        all.len() <= bytes.len(),
        "{} samples from {} bytes",
        all.len(),
        bytes.len()
    );

    let filter = filter(selector);
    let mut some = Vec::new();
    LargestAllocation::reset();
    let filtered_error = decode_chunk_matching(bytes, &filter, &mut some);
    assert!(LargestAllocation::largest() <= allocation_budget(bytes.len()));
    assert_eq!(filtered_error, error, "the filter changed the error");
    let want: Vec<_> = all
        .iter()
        .filter(|s| {
            filter.measurand.is_none_or(|m| s.measurand == m)
                && filter.connector_id.is_none_or(|c| s.connector_id == c)
                && filter.phase.is_none_or(|p| s.phase == Some(p))
                && filter.from.is_none_or(|f| s.timestamp >= f)
                && filter.to.is_none_or(|t| s.timestamp < t)
        })
        .cloned()
        .collect();
    assert_same_samples(&some, &want, "filtered decode");

    let mut again = Vec::new();
    encode_block(&all, &mut again);
    let (round, round_error) = decode_chunk(&again);
    assert_eq!(round_error, None, "re-encoded block is unreadable");
    assert_same_samples(&round, &all, "re-encoded block");

    match decode_sample_value(bytes) {
        Some(one) => {
            assert!(error.is_none() && all.len() == 1);
            assert_same_samples(&[one], &all, "decode_sample_value");
        }
        None => assert!(error.is_some() || all.len() != 1),
    }
});
