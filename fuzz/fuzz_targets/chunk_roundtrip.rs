//! The raw-sample chunk codec's round trip: samples built from the input with `arbitrary`
//! (clustered times, short decimals and arbitrary f64 bit patterns, every enumeration,
//! free-text units, SignedData, leap seconds, extreme timestamps) are encoded as one or two
//! blocks and decoded back.
//!
//! Checks: decoding gives back exactly the samples encoded, in order, bit for bit, with no
//! error; two blocks appended to one chunk decode independently; the latest-sample value
//! (`encode_sample_value`) round-trips on its own.
#![no_main]

use actors::sample::{Location, Measurand, Phase, ReadingContext, Sample, SampleValue, Unit};
use actors::store::{decode_chunk, decode_sample_value, encode_block, encode_sample_value};
use chrono::DateTime;
use fuzz_support::{assert_same_samples, same_sample};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Earliest and latest whole seconds chrono's `DateTime<Utc>` can hold (about ±262,000 years).
const MIN_SECS: i64 = -8_334_601_228_800;
const MAX_SECS: i64 = 8_210_266_876_799;

fn unit(u: &mut Unstructured<'_>, m: Measurand) -> Result<Unit> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 => m.default_unit(),
        2 => Unit::from_code(u.int_in_range(0..=11u8)?).unwrap_or(Unit::Wh),
        _ => Unit::Other(u.arbitrary()?),
    })
}

fn value(u: &mut Unstructured<'_>, previous: Option<&SampleValue>) -> Result<SampleValue> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => SampleValue::Number(f64::from_bits(u.arbitrary()?)),
        1 => SampleValue::Signed(u.arbitrary()?),
        2 => match previous {
            Some(v) => v.clone(),
            None => SampleValue::Number(0.0),
        },
        _ => {
            // A short decimal, as meters send: mantissa / 10^scale.
            let mantissa = i64::from(u.arbitrary::<i32>()?) * i64::from(u.arbitrary::<u8>()?);
            let scale = u.int_in_range(0..=11i32)?;
            SampleValue::Number(mantissa as f64 / 10f64.powi(scale))
        }
    })
}

fn timestamp(u: &mut Unstructured<'_>, previous_ms: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    let ms = match u.int_in_range(0..=9u8)? {
        0 => u.int_in_range(MIN_SECS * 1000..=MAX_SECS * 1000 + 999)?,
        1 => previous_ms,
        _ => previous_ms.saturating_add(i64::from(u.arbitrary::<i16>()?) * 1000),
    }
    .clamp(MIN_SECS * 1000, MAX_SECS * 1000 + 999);
    let nanos = match u.int_in_range(0..=5u8)? {
        0 => u.int_in_range(0..=999_999u32)?,
        // A leap second (chrono represents it as nanos >= 10^9, valid at second 59 only).
        1 => 1_000_000_000 + u.int_in_range(0..=999_999_999u32)?,
        _ => 0,
    };
    let secs = ms.div_euclid(1000);
    let sub = (ms.rem_euclid(1000) as u32) * 1_000_000;
    Ok(match nanos {
        n if n >= 1_000_000_000 => DateTime::from_timestamp(secs - secs.rem_euclid(60) + 59, n),
        n => DateTime::from_timestamp(secs, sub + n),
    }
    .unwrap_or_default())
}

fn samples(u: &mut Unstructured<'_>) -> Result<Vec<Sample>> {
    let count = u.int_in_range(0..=64usize)?;
    let mut out: Vec<Sample> = Vec::with_capacity(count);
    let mut ms = 1_767_225_600_000; // 2026-01-01
    for _ in 0..count {
        // Often another sample of an earlier series, as a real flush is.
        let template = match out.len() {
            0 => None,
            n if u.ratio(2, 3)? => Some(out[u.int_in_range(0..=n - 1)?].clone()),
            _ => None,
        };
        let timestamp = timestamp(u, ms)?;
        ms = timestamp.timestamp_millis();
        let sample = match template {
            Some(t) => Sample {
                timestamp,
                value: value(u, Some(&t.value))?,
                ..t
            },
            None => {
                let measurand = *u.choose(Measurand::ALL)?;
                Sample {
                    timestamp,
                    connector_id: match u.int_in_range(0..=3u8)? {
                        0 => u.arbitrary()?,
                        n => u32::from(n - 1),
                    },
                    transaction_id: match u.int_in_range(0..=2u8)? {
                        0 => None,
                        1 => Some(u.arbitrary()?),
                        _ => Some(u.int_in_range(-1..=1000)?),
                    },
                    measurand,
                    phase: if u.arbitrary()? {
                        Some(*u.choose(Phase::ALL)?)
                    } else {
                        None
                    },
                    location: *u.choose(Location::ALL)?,
                    context: *u.choose(ReadingContext::ALL)?,
                    unit: unit(u, measurand)?,
                    value: value(u, None)?,
                }
            }
        };
        out.push(sample);
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(first) = samples(&mut u) else { return };
    let Ok(second) = samples(&mut u) else { return };

    let mut chunk = Vec::new();
    encode_block(&first, &mut chunk);
    let (decoded, error) = decode_chunk(&chunk);
    assert_eq!(error, None, "a block just encoded is unreadable");
    assert_same_samples(&decoded, &first, "one block");

    // A second APPEND to the same chunk (borrowed samples, as the writer passes them).
    let refs: Vec<&Sample> = second.iter().collect();
    encode_block(&refs, &mut chunk);
    let (decoded, error) = decode_chunk(&chunk);
    assert_eq!(error, None, "two blocks are unreadable");
    let both: Vec<Sample> = first.iter().chain(&second).cloned().collect();
    assert_same_samples(&decoded, &both, "two blocks");

    if let Some(sample) = first.first() {
        let value = encode_sample_value(sample);
        match decode_sample_value(&value) {
            Some(back) => assert!(same_sample(&back, sample), "{back:?} != {sample:?}"),
            None => panic!("latest value of {sample:?} is unreadable"),
        }
    }
});
