//! Compact binary encoding of raw samples, the bulk of what Redis holds.
//!
//! A raw chunk key (one per charge point and UTC hour) is a string made of self-contained
//! *blocks*, one per buffer flush, each added with one `APPEND`. Each block carries its own
//! series dictionary and delta bases, so blocks never depend on each other: a corrupt block or
//! one written by a future format version is skipped without losing its neighbours.
//!
//! # Block layout (format version 1)
//!
//! All integers are LEB128 varints (`uv`); signed ones are zigzag-mapped first (`sv`).
//!
//! ```text
//! block      = uv body_len, body                    -- framing: lets a reader skip a block
//! body       = u8 version (=1)
//!              sv base_ms                           -- first sample's time, unix ms
//!              uv series_count, series*             -- dictionary, in order of first use
//!              uv sample_count, sample*
//! series     = uv descriptor                        -- bit layout below
//!              [uv connector_id, uv txn]            -- unless descriptor bit 0 (same as previous)
//!              [u8 unit_code [uv len, utf8 text]]   -- unless descriptor bit 1 (default unit);
//!                                                      text only for code 255 (`Unit::Other`)
//!              u8 scale                             -- decimals of this series' mantissas, 0..=9
//! txn        = 0 for none, else zigzag(id) + 1
//! descriptor = bit 0      connector and txn equal to the previous series entry
//!              bit 1      unit is `measurand.default_unit()`
//!              bits 2-6   measurand code
//!              bits 7-10  phase code (0 = none)
//!              bits 11-13 location code
//!              bits 14-16 context code   (higher bits must be 0)
//! sample     = uv head = series_index << 3 | kind << 1 | new_time
//!              [uv time = zigzag(ms - previous ms) << 1 | has_sub_ms, [uv sub_ms_nanos]]
//!                                                   -- only if new_time; else same instant as
//!                                                      the previous sample (base_ms for the first)
//!              value by kind:
//!                0 decimal: sv mantissa - previous mantissa of the series (0 at block start)
//!                1 decimal, unchanged: nothing
//!                2 raw f64: 8 bytes, little-endian IEEE 754 bits
//!                3 SignedData: uv len, utf8 text
//! ```
//!
//! A decimal value is `mantissa as f64 / 10^scale`; the encoder uses it only when that
//! expression reproduces the original f64 bit for bit, otherwise it stores the raw f64 (kind 2).
//! The decoder therefore gives back exactly the samples that were encoded, in the same order.

use std::borrow::Borrow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::varint::{self, Reader};
use crate::sample::{Location, Measurand, Phase, ReadingContext, Sample, SampleValue, Unit};

/// Format version written by this build; blocks with any other version are skipped (and
/// reported) rather than misread, so a rollback after an upgrade cannot corrupt readings.
pub const FORMAT_VERSION: u8 = 1;

/// Most decimals a stored mantissa may carry. Meter values have 0-3 in practice; more than
/// this means the value is not a short decimal (e.g. 70 °F in °C) and is cheaper as raw f64.
pub const MAX_SCALE: u8 = 9;

const POW10: [f64; MAX_SCALE as usize + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Largest mantissa magnitude that converts to f64 exactly.
const MAX_EXACT_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

const KIND_DECIMAL: u64 = 0;
const KIND_UNCHANGED: u64 = 1;
const KIND_F64: u64 = 2;
const KIND_SIGNED: u64 = 3;

const UNIT_TEXT: u8 = 255;

/// Why one block could not be read. The block is dropped whole: a partly read block could
/// attribute values to the wrong series.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block ends in the middle of a field, or a varint is malformed.
    #[error("block truncated or malformed")]
    Truncated,
    /// Written by a format version this build does not read (probably a newer one).
    #[error("unknown block format version {0}")]
    UnknownVersion(u8),
    /// The block's length prefix is unreadable or runs past the end of the chunk; nothing
    /// after this point can be framed, so the rest of the chunk is lost.
    #[error("block length prefix unreadable or past the end of the chunk")]
    Framing,
    /// A code (measurand, phase, unit, scale, descriptor bits…) this build does not know.
    #[error("unknown {what} code {code}")]
    UnknownCode {
        /// Which field held the code.
        what: &'static str,
        /// The code found.
        code: u64,
    },
    /// A sample names a series the block's dictionary does not have, or a series entry
    /// refers back to a previous entry that does not exist.
    #[error("bad series reference {0}")]
    BadSeries(u64),
    /// A timestamp, connector or transaction id outside its type's range.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// SignedData or unit text that is not UTF-8.
    #[error("text is not UTF-8")]
    BadUtf8,
    /// The block decoded but did not use all of its bytes, so it is not what was written.
    #[error("{0} unread bytes at the end of the block")]
    TrailingBytes(usize),
}

/// What went wrong while decoding a chunk: the good blocks were still decoded, and this says
/// how much was skipped so callers can log it (and alert on it) without failing the read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{bad_blocks} unreadable block(s) in chunk, first at byte {offset}: {first}")]
pub struct ChunkError {
    /// Byte offset (in the chunk) of the first bad block's length prefix.
    pub offset: usize,
    /// How many blocks were skipped; a [`BlockError::Framing`] counts as one.
    pub bad_blocks: usize,
    /// The first problem found.
    pub first: BlockError,
}

/// Appends one self-contained block holding `samples` (any series, any timestamp order) to
/// `out`; the writer `APPEND`s exactly these bytes to the chunk key. Writes nothing for an
/// empty slice, since an empty block would only cost memory. Takes owned or borrowed samples
/// (`&[Sample]` or `&[&Sample]`), so the writer can encode a flush without copying it.
pub fn encode_block<S: Borrow<Sample>>(samples: &[S], out: &mut Vec<u8>) {
    let Some(first) = samples.first().map(Borrow::borrow) else {
        return;
    };

    // Pass 1: the series dictionary, and each series' scale (the most decimals any of its
    // values needs), so that mantissas of one series are directly comparable.
    let mut index: HashMap<Series, usize> = HashMap::new();
    let mut series: Vec<(Series, u8)> = Vec::new();
    let mut sample_series = Vec::with_capacity(samples.len());
    for sample in samples.iter().map(Borrow::borrow) {
        let key = Series::of(sample);
        let i = match index.get(&key) {
            Some(&i) => i,
            None => {
                let i = series.len();
                index.insert(key.clone(), i);
                series.push((key, 0));
                i
            }
        };
        if let SampleValue::Number(v) = sample.value {
            if let Some(scale) = min_scale(v) {
                series[i].1 = series[i].1.max(scale);
            }
        }
        sample_series.push(i);
    }

    // Pass 2: the body.
    let mut body = Vec::with_capacity(16 + series.len() * 4 + samples.len() * 4);
    body.push(FORMAT_VERSION);
    let base = split_timestamp(&first.timestamp);
    varint::put_i64(&mut body, base.0);
    varint::put_u64(&mut body, series.len() as u64);
    let mut previous: Option<&Series> = None;
    for (entry, scale) in &series {
        put_series(&mut body, entry, *scale, previous);
        previous = Some(entry);
    }
    varint::put_u64(&mut body, samples.len() as u64);

    let mut previous_time = (base.0, 0u32);
    let mut previous_mantissa = vec![0i64; series.len()];
    for (sample, &i) in samples.iter().map(Borrow::borrow).zip(&sample_series) {
        let time = split_timestamp(&sample.timestamp);
        let new_time = time != previous_time;
        let (kind, delta) = match &sample.value {
            SampleValue::Number(v) => match to_mantissa(*v, series[i].1) {
                Some(m) => {
                    // Both mantissas are within ±2^53, so this cannot overflow.
                    let delta = m.wrapping_sub(previous_mantissa[i]);
                    previous_mantissa[i] = m;
                    let kind = if delta == 0 {
                        KIND_UNCHANGED
                    } else {
                        KIND_DECIMAL
                    };
                    (kind, delta)
                }
                None => (KIND_F64, 0),
            },
            SampleValue::Signed(_) => (KIND_SIGNED, 0),
        };
        varint::put_u64(&mut body, (i as u64) << 3 | kind << 1 | u64::from(new_time));
        if new_time {
            let ms_delta = time.0.wrapping_sub(previous_time.0);
            let has_sub_ms = time.1 != 0;
            varint::put_u64(
                &mut body,
                varint::zigzag(ms_delta) << 1 | u64::from(has_sub_ms),
            );
            if has_sub_ms {
                varint::put_u64(&mut body, u64::from(time.1));
            }
            previous_time = time;
        }
        match (&sample.value, kind) {
            (_, KIND_DECIMAL) => varint::put_i64(&mut body, delta),
            (SampleValue::Number(v), KIND_F64) => {
                body.extend_from_slice(&v.to_bits().to_le_bytes())
            }
            (SampleValue::Signed(text), _) => put_text(&mut body, text),
            _ => {}
        }
    }

    varint::put_u64(out, body.len() as u64);
    out.extend_from_slice(&body);
}

/// Decodes every block of a chunk, in order. Bad blocks are skipped (their samples dropped)
/// and summarised in the error, so one corrupt append never hides an hour of good data.
/// Never panics, whatever the bytes.
pub fn decode_chunk(bytes: &[u8]) -> (Vec<Sample>, Option<ChunkError>) {
    let mut samples = Vec::new();
    let error = decode_chunk_matching(bytes, &SampleFilter::default(), &mut samples);
    (samples, error)
}

/// Which samples a read wants: series fields and a time range. Applied while decoding, so a
/// read of one series out of a chunk of ten builds one `Sample` in ten (issue 5, target 5).
#[derive(Debug, Clone, Default)]
pub struct SampleFilter {
    /// Only this measurand.
    pub measurand: Option<Measurand>,
    /// Only this connector.
    pub connector_id: Option<u32>,
    /// Only this phase.
    pub phase: Option<Phase>,
    /// Only timestamps at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Only timestamps before this.
    pub to: Option<DateTime<Utc>>,
}

impl SampleFilter {
    /// Whether samples of `series` can match (their timestamps are checked one by one).
    fn keeps_series(&self, series: &Series) -> bool {
        self.measurand.is_none_or(|m| series.measurand == m)
            && self.connector_id.is_none_or(|c| series.connector_id == c)
            && self.phase.is_none_or(|p| series.phase == Some(p))
    }

    fn keeps_time(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| t >= from) && self.to.is_none_or(|to| t < to)
    }
}

/// [`decode_chunk`] keeping only what `filter` matches, appended to `out`. Every block is still
/// parsed in full (deltas and framing need it), but samples of other series or outside the range
/// are never built. A bad block adds nothing, as in [`decode_chunk`].
pub fn decode_chunk_matching(
    bytes: &[u8],
    filter: &SampleFilter,
    out: &mut Vec<Sample>,
) -> Option<ChunkError> {
    let mut error: Option<ChunkError> = None;
    let mut note = |offset, problem| match &mut error {
        Some(e) => e.bad_blocks += 1,
        None => {
            error = Some(ChunkError {
                offset,
                bad_blocks: 1,
                first: problem,
            })
        }
    };
    let mut reader = Reader::new(bytes);
    while reader.remaining() > 0 {
        let offset = reader.position();
        let Some(body) = reader.usize().and_then(|len| reader.take(len)) else {
            note(offset, BlockError::Framing);
            break;
        };
        let kept = out.len();
        if let Err(problem) = decode_block(body, filter, out) {
            out.truncate(kept);
            note(offset, problem);
        }
    }
    error
}

/// Encodes one sample for the latest-sample hash: a one-block chunk, so the hash and the raw
/// chunks share one codec and one set of tests.
pub fn encode_sample_value(sample: &Sample) -> Vec<u8> {
    let mut out = Vec::new();
    encode_block(std::slice::from_ref(sample), &mut out);
    out
}

/// Inverse of [`encode_sample_value`]; `None` unless the bytes hold exactly one good sample.
pub fn decode_sample_value(bytes: &[u8]) -> Option<Sample> {
    match decode_chunk(bytes) {
        (mut samples, None) if samples.len() == 1 => samples.pop(),
        _ => None,
    }
}

/// Everything a sample shares with the other samples of its series; stored once per block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Series {
    connector_id: u32,
    transaction_id: Option<i32>,
    measurand: Measurand,
    phase: Option<Phase>,
    location: Location,
    context: ReadingContext,
    unit: Unit,
}

impl Series {
    fn of(sample: &Sample) -> Self {
        Series {
            connector_id: sample.connector_id,
            transaction_id: sample.transaction_id,
            measurand: sample.measurand,
            phase: sample.phase,
            location: sample.location,
            context: sample.context,
            unit: sample.unit.clone(),
        }
    }

    fn sample(&self, timestamp: DateTime<Utc>, value: SampleValue) -> Sample {
        Sample {
            timestamp,
            connector_id: self.connector_id,
            transaction_id: self.transaction_id,
            measurand: self.measurand,
            phase: self.phase,
            location: self.location,
            context: self.context,
            unit: self.unit.clone(),
            value,
        }
    }

    fn same_owner(&self, other: &Series) -> bool {
        self.connector_id == other.connector_id && self.transaction_id == other.transaction_id
    }
}

fn put_series(out: &mut Vec<u8>, series: &Series, scale: u8, previous: Option<&Series>) {
    let same_owner = previous.is_some_and(|p| p.same_owner(series));
    let default_unit = series.unit == series.measurand.default_unit();
    let descriptor = u64::from(same_owner)
        | u64::from(default_unit) << 1
        | u64::from(series.measurand.code() & 0x1f) << 2
        | u64::from(series.phase.map_or(0, Phase::code) & 0x0f) << 7
        | u64::from(series.location.code() & 0x07) << 11
        | u64::from(series.context.code() & 0x07) << 14;
    varint::put_u64(out, descriptor);
    if !same_owner {
        varint::put_u64(out, u64::from(series.connector_id));
        let txn = series
            .transaction_id
            .map_or(0, |id| varint::zigzag(i64::from(id)) + 1);
        varint::put_u64(out, txn);
    }
    if !default_unit {
        let code = series.unit.code();
        out.push(code);
        if code == UNIT_TEXT {
            put_text(out, series.unit.as_str());
        }
    }
    out.push(scale);
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    varint::put_u64(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// `?` for reads: running out of bytes is the one way a read fails.
trait Need<T> {
    fn need(self) -> Result<T, BlockError>;
}

impl<T> Need<T> for Option<T> {
    fn need(self) -> Result<T, BlockError> {
        self.ok_or(BlockError::Truncated)
    }
}

fn unknown(what: &'static str, code: impl Into<u64>) -> BlockError {
    BlockError::UnknownCode {
        what,
        code: code.into(),
    }
}

fn decode_block(
    body: &[u8],
    filter: &SampleFilter,
    samples: &mut Vec<Sample>,
) -> Result<(), BlockError> {
    let mut r = Reader::new(body);
    let version = r.u8().need()?;
    if version != FORMAT_VERSION {
        return Err(BlockError::UnknownVersion(version));
    }
    let base_ms = r.i64().need()?;

    let series_count = r.usize().need()?;
    let mut series: Vec<(Series, u8)> = Vec::with_capacity(series_count.min(r.remaining()));
    for _ in 0..series_count {
        let entry = read_series(&mut r, series.last().map(|(s, _)| s))?;
        series.push(entry);
    }

    let keep: Vec<bool> = series.iter().map(|(s, _)| filter.keeps_series(s)).collect();
    let sample_count = r.usize().need()?;
    if keep.iter().all(|k| *k) {
        samples.reserve(sample_count.min(r.remaining()));
    }
    let mut time = (base_ms, 0u32);
    let mut timestamp = join_timestamp(time).ok_or(BlockError::OutOfRange("timestamp"))?;
    let mut previous_mantissa = vec![0i64; series.len()];
    for _ in 0..sample_count {
        let head = r.u64().need()?;
        let i = usize::try_from(head >> 3).map_err(|_| BlockError::BadSeries(head >> 3))?;
        let (entry, scale) = series.get(i).ok_or(BlockError::BadSeries(head >> 3))?;
        if head & 1 == 1 {
            let t = r.u64().need()?;
            let ms = time.0.checked_add(varint::unzigzag(t >> 1));
            let sub_ms = if t & 1 == 1 {
                u32::try_from(r.u64().need()?).ok()
            } else {
                Some(0)
            };
            time = ms.zip(sub_ms).ok_or(BlockError::OutOfRange("timestamp"))?;
            timestamp = join_timestamp(time).ok_or(BlockError::OutOfRange("timestamp"))?;
        }
        let value = match (head >> 1) & 0b11 {
            KIND_DECIMAL | KIND_UNCHANGED => {
                let previous = previous_mantissa.get_mut(i).need()?;
                if (head >> 1) & 0b11 == KIND_DECIMAL {
                    *previous = previous.wrapping_add(r.i64().need()?);
                }
                SampleValue::Number(from_mantissa(*previous, *scale))
            }
            KIND_F64 => {
                let bytes: [u8; 8] = r
                    .take(8)
                    .need()?
                    .try_into()
                    .map_err(|_| BlockError::Truncated)?;
                SampleValue::Number(f64::from_bits(u64::from_le_bytes(bytes)))
            }
            _ => SampleValue::Signed(read_text(&mut r)?),
        };
        if keep[i] && filter.keeps_time(timestamp) {
            samples.push(entry.sample(timestamp, value));
        }
    }

    match r.remaining() {
        0 => Ok(()),
        extra => Err(BlockError::TrailingBytes(extra)),
    }
}

fn read_series(r: &mut Reader<'_>, previous: Option<&Series>) -> Result<(Series, u8), BlockError> {
    let descriptor = r.u64().need()?;
    if descriptor >> 17 != 0 {
        return Err(unknown("series descriptor", descriptor));
    }
    let field = |shift: u32, mask: u64| ((descriptor >> shift) & mask) as u8;
    let measurand =
        Measurand::from_code(field(2, 0x1f)).ok_or(unknown("measurand", field(2, 0x1f)))?;
    let phase = match field(7, 0x0f) {
        0 => None,
        code => Some(Phase::from_code(code).ok_or(unknown("phase", code))?),
    };
    let location = Location::from_code(field(11, 0x07)).ok_or(unknown("location", field(11, 7)))?;
    let context =
        ReadingContext::from_code(field(14, 0x07)).ok_or(unknown("context", field(14, 7)))?;

    let (connector_id, transaction_id) = if descriptor & 1 == 1 {
        let previous = previous.ok_or(BlockError::BadSeries(0))?;
        (previous.connector_id, previous.transaction_id)
    } else {
        let connector =
            u32::try_from(r.u64().need()?).map_err(|_| BlockError::OutOfRange("connector id"))?;
        let transaction = match r.u64().need()? {
            0 => None,
            n => Some(
                i32::try_from(varint::unzigzag(n - 1))
                    .map_err(|_| BlockError::OutOfRange("transaction id"))?,
            ),
        };
        (connector, transaction)
    };

    let unit = if descriptor & 2 != 0 {
        measurand.default_unit()
    } else {
        match r.u8().need()? {
            UNIT_TEXT => Unit::Other(read_text(r)?),
            code => Unit::from_code(code).ok_or(unknown("unit", code))?,
        }
    };

    let scale = r.u8().need()?;
    if scale > MAX_SCALE {
        return Err(unknown("scale", scale));
    }
    let series = Series {
        connector_id,
        transaction_id,
        measurand,
        phase,
        location,
        context,
        unit,
    };
    Ok((series, scale))
}

fn read_text(r: &mut Reader<'_>) -> Result<String, BlockError> {
    let len = r.usize().need()?;
    let bytes = r.take(len).need()?;
    String::from_utf8(bytes.to_vec()).map_err(|_| BlockError::BadUtf8)
}

/// Splits a timestamp into unix milliseconds and the nanoseconds below them, so that
/// sub-millisecond precision (and chrono's leap-second representation) survive the trip.
fn split_timestamp(timestamp: &DateTime<Utc>) -> (i64, u32) {
    let nanos = timestamp.timestamp_subsec_nanos();
    // A leap second has nanos >= 10^9; keep it in the sub-ms remainder, not the millis.
    let millis = (nanos / 1_000_000).min(999);
    let ms = timestamp.timestamp() * 1000 + i64::from(millis);
    (ms, nanos - millis * 1_000_000)
}

fn join_timestamp((ms, sub_ms): (i64, u32)) -> Option<DateTime<Utc>> {
    let millis = ms.rem_euclid(1000) as u32;
    let nanos = (millis * 1_000_000).checked_add(sub_ms)?;
    DateTime::from_timestamp(ms.div_euclid(1000), nanos)
}

/// The fewest decimals with which `value` is exactly a short decimal, if any.
fn min_scale(value: f64) -> Option<u8> {
    (0..=MAX_SCALE).find(|&scale| to_mantissa(value, scale).is_some())
}

/// The mantissa `m` with `m as f64 / 10^scale` bit-identical to `value`, if there is one.
fn to_mantissa(value: f64, scale: u8) -> Option<i64> {
    let power = *POW10.get(usize::from(scale))?;
    let scaled = (value * power).round();
    if scaled.is_nan() || scaled.abs() > MAX_EXACT_MANTISSA {
        return None;
    }
    let mantissa = scaled as i64;
    (from_mantissa(mantissa, scale).to_bits() == value.to_bits()).then_some(mantissa)
}

/// The decoder's (and the encoder's check's) only way to turn a mantissa back into a value.
fn from_mantissa(mantissa: i64, scale: u8) -> f64 {
    let power = POW10.get(usize::from(scale)).copied().unwrap_or(1.0);
    mantissa as f64 / power
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers (xorshift64*), so the tests need no extra crates.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn sample(ms: i64, measurand: Measurand, phase: Option<Phase>, value: f64) -> Sample {
        Sample {
            timestamp: at(ms),
            connector_id: 1,
            transaction_id: Some(4711),
            measurand,
            phase,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: measurand.default_unit(),
            value: SampleValue::Number(value),
        }
    }

    fn round_trip(samples: &[Sample]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_block(samples, &mut out);
        let (decoded, error) = decode_chunk(&out);
        assert_eq!(error, None);
        assert_same(&decoded, samples);
        out
    }

    /// Equality that also holds for NaN and tells -0.0 from 0.0.
    fn assert_same(got: &[Sample], want: &[Sample]) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            match (&g.value, &w.value) {
                (SampleValue::Number(a), SampleValue::Number(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
                    let strip = |s: &Sample| Sample {
                        value: SampleValue::Number(0.0),
                        ..s.clone()
                    };
                    assert_eq!(strip(g), strip(w));
                }
                _ => assert_eq!(g, w),
            }
        }
    }

    /// What a charge point sends: values as decimal strings, parsed to f64.
    fn parsed(text: String) -> f64 {
        text.parse().unwrap()
    }

    /// 10 MeterValues, 10 s apart, of 10 sampled values each, slowly changing like a real
    /// 11 kW three-phase session.
    fn realistic_block(rng: &mut Rng, start_ms: i64) -> Vec<Sample> {
        let mut samples = Vec::new();
        let mut energy = 12_345.6;
        let mut soc = 45.0;
        for flush in 0..10 {
            let ms = start_ms + flush * 10_000;
            let noise =
                |rng: &mut Rng, spread: u64| rng.below(2 * spread + 1) as f64 - spread as f64;
            energy += 30.0 + noise(rng, 10) / 10.0;
            let power = 7_400.0 + noise(rng, 20);
            samples.push(sample(
                ms,
                Measurand::EnergyActiveImportRegister,
                None,
                parsed(format!("{energy:.1}")),
            ));
            samples.push(sample(ms, Measurand::PowerActiveImport, None, power));
            for phase in [Phase::L1, Phase::L2, Phase::L3] {
                let current = 16.02 + noise(rng, 5) / 100.0;
                let text = format!("{current:.2}");
                samples.push(sample(
                    ms,
                    Measurand::CurrentImport,
                    Some(phase),
                    parsed(text),
                ));
            }
            for phase in [Phase::L1, Phase::L2, Phase::L3] {
                let voltage = 230.1 + noise(rng, 4) / 10.0;
                let text = format!("{voltage:.1}");
                samples.push(sample(ms, Measurand::Voltage, Some(phase), parsed(text)));
            }
            if rng.below(4) == 0 {
                soc += 1.0;
            }
            samples.push(sample(ms, Measurand::SoC, None, soc));
            let mut temp = sample(ms, Measurand::Temperature, None, 31.5);
            temp.location = Location::Body;
            samples.push(temp);
        }
        samples
    }

    #[test]
    fn realistic_block_fits_the_size_budget() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = 1_709_294_400_000; // 2024-03-01T12:00:00Z
        let samples = realistic_block(&mut rng, start);
        assert_eq!(samples.len(), 100);
        let bytes = round_trip(&samples);
        let per_sample = bytes.len() as f64 / samples.len() as f64;
        println!(
            "realistic block: {} bytes for {} samples = {per_sample:.2} bytes/sample",
            bytes.len(),
            samples.len()
        );
        assert!(per_sample <= 6.0, "{per_sample} bytes/sample");
        // A whole hour (36 such blocks) stays within budget as well.
        let mut hour = Vec::new();
        for block in 0..36 {
            encode_block(
                &realistic_block(&mut rng, start + block * 100_000),
                &mut hour,
            );
        }
        let per_sample = hour.len() as f64 / 3600.0;
        println!(
            "one hour: {} bytes = {per_sample:.2} bytes/sample",
            hour.len()
        );
        assert!(per_sample <= 6.0);
        assert_eq!(decode_chunk(&hour).0.len(), 3600);
    }

    #[test]
    fn filtered_decoding_equals_decoding_everything_then_filtering() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let start = 1_709_294_400_000;
        let mut chunk = Vec::new();
        for block in 0..6 {
            encode_block(
                &realistic_block(&mut rng, start + block * 100_000),
                &mut chunk,
            );
        }
        // A corrupt block in the middle: skipped by both, without leaving samples behind.
        chunk.extend_from_slice(&[3, 9, 9, 9]);
        encode_block(&realistic_block(&mut rng, start + 700_000), &mut chunk);
        let (everything, error) = decode_chunk(&chunk);
        assert!(error.is_some());
        let filters = [
            SampleFilter::default(),
            SampleFilter {
                measurand: Some(Measurand::Voltage),
                phase: Some(Phase::L2),
                ..SampleFilter::default()
            },
            SampleFilter {
                measurand: Some(Measurand::SoC),
                connector_id: Some(1),
                from: Some(at(start + 150_000)),
                to: Some(at(start + 450_000)),
                ..SampleFilter::default()
            },
            SampleFilter {
                connector_id: Some(2),
                ..SampleFilter::default()
            },
        ];
        for filter in filters {
            let want: Vec<Sample> = everything
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
            let mut got = Vec::new();
            let got_error = decode_chunk_matching(&chunk, &filter, &mut got);
            assert_eq!(got_error, error, "{filter:?}");
            assert_same(&got, &want);
        }
    }

    #[test]
    fn mixed_series_orders_and_units_round_trip() {
        let t = 1_709_294_400_000;
        let mut samples = vec![
            sample(t, Measurand::Voltage, Some(Phase::L1N), 230.0),
            sample(t, Measurand::Voltage, Some(Phase::L1N), 230.15),
            sample(t - 3_600_000, Measurand::Voltage, Some(Phase::L1N), 229.9),
            sample(t + 1, Measurand::Frequency, None, 50.01),
            sample(t - 86_400_000 * 400, Measurand::PowerFactor, None, 0.98),
            sample(0, Measurand::Rpm, None, 1200.0),
            sample(-5_000, Measurand::Temperature, None, -40.5),
        ];
        let mut other = sample(t, Measurand::Frequency, None, 50.0);
        other.unit = Unit::Other("Furlongs".into());
        samples.push(other.clone());
        other.unit = Unit::Other(String::new());
        samples.push(other.clone());
        other.unit = Unit::Other("Wh".into()); // a known spelling kept as text stays text
        samples.push(other);
        let mut odd_unit = sample(t, Measurand::Voltage, Some(Phase::L2), 1.0);
        odd_unit.unit = Unit::Wh;
        samples.push(odd_unit);
        let mut signed = sample(t + 5, Measurand::EnergyActiveImportRegister, None, 0.0);
        signed.value =
            SampleValue::Signed("OCMF|{\"RD\":[{\"RV\":1.5}]}|{\"SD\":\"30 45\"} ✓".into());
        samples.push(signed.clone());
        signed.value = SampleValue::Signed(String::new());
        samples.push(signed);
        let mut no_txn = sample(t, Measurand::CurrentOffered, None, 32.0);
        no_txn.transaction_id = None;
        no_txn.connector_id = 0;
        no_txn.location = Location::Inlet;
        no_txn.context = ReadingContext::Trigger;
        samples.push(no_txn.clone());
        no_txn.transaction_id = Some(i32::MIN);
        no_txn.connector_id = u32::MAX;
        no_txn.context = ReadingContext::Other;
        no_txn.location = Location::Ev;
        no_txn.phase = Some(Phase::L3L1);
        samples.push(no_txn.clone());
        no_txn.transaction_id = Some(i32::MAX);
        no_txn.context = ReadingContext::TransactionEnd;
        samples.push(no_txn);
        round_trip(&samples);
        let mut reversed = samples.clone();
        reversed.reverse();
        round_trip(&reversed);
    }

    #[test]
    fn extreme_and_awkward_values_round_trip_bit_exact() {
        let fahrenheit = |f: f64| (f - 32.0) * 5.0 / 9.0;
        let values = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1 + 0.2,
            fahrenheit(70.0),
            fahrenheit(212.0),
            1e15,
            9_007_199_254_740_993.0,
            -9_007_199_254_740_992.0,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            123.456_789_012,
            0.000_000_001,
            -273.15,
            12_345_678.901,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        let t = 1_709_294_400_000;
        // One series holding all of them (shared scale), then one series each.
        let one_series: Vec<_> = values
            .iter()
            .map(|&v| sample(t, Measurand::PowerActiveImport, None, v))
            .collect();
        round_trip(&one_series);
        let phases = [None, Some(Phase::L1), Some(Phase::L2), Some(Phase::N)];
        let measurands = Measurand::ALL;
        let many: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| sample(t + i as i64, measurands[i % 22], phases[i % 4], v))
            .collect();
        round_trip(&many);
    }

    #[test]
    fn decimal_check_rejects_inexact_values() {
        assert_eq!(min_scale(230.1), Some(1));
        assert_eq!(min_scale(16.02), Some(2));
        assert_eq!(min_scale(7400.0), Some(0));
        assert_eq!(min_scale((212.0 - 32.0) * 5.0 / 9.0), Some(0));
        assert_eq!(min_scale((70.0 - 32.0) * 5.0 / 9.0), None);
        assert_eq!(min_scale(0.1 + 0.2), None);
        assert_eq!(min_scale(-0.0), None);
        assert_eq!(min_scale(f64::NAN), None);
        assert_eq!(min_scale(1e20), None);
        assert_eq!(to_mantissa(230.1, 3), Some(230_100));
    }

    #[test]
    fn timestamps_keep_sub_millisecond_precision_and_leap_seconds() {
        let t = 1_709_294_400;
        let nanos = DateTime::from_timestamp(t, 123_456_789).unwrap();
        let micros = DateTime::from_timestamp(t, 1_000).unwrap();
        let leap = DateTime::from_timestamp(1_483_228_799, 1_500_000_123).unwrap();
        let mut samples = Vec::new();
        for ts in [
            nanos,
            micros,
            leap,
            micros,
            at(-1),
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ] {
            let mut s = sample(0, Measurand::Voltage, None, 230.0);
            s.timestamp = ts;
            samples.push(s);
        }
        round_trip(&samples);
        samples.reverse();
        round_trip(&samples);
    }

    #[test]
    fn codes_fit_the_descriptor_bit_fields() {
        assert!(Measurand::ALL.iter().all(|m| m.code() < 32));
        assert!(Phase::ALL.iter().all(|p| p.code() > 0 && p.code() < 16));
        assert!(Location::ALL.iter().all(|l| l.code() < 8));
        assert!(ReadingContext::ALL.iter().all(|c| c.code() < 8));
    }

    #[test]
    fn appended_blocks_decode_in_order() {
        let mut rng = Rng(7);
        let first = realistic_block(&mut rng, 1_709_294_400_000);
        let second = realistic_block(&mut rng, 1_709_294_500_000);
        let third = vec![sample(1_709_294_000_000, Measurand::SoC, None, 80.0)];
        let mut chunk = Vec::new();
        encode_block(&first, &mut chunk);
        encode_block::<Sample>(&[], &mut chunk);
        encode_block(&second, &mut chunk);
        encode_block(&third, &mut chunk);
        let (decoded, error) = decode_chunk(&chunk);
        assert_eq!(error, None);
        assert_same(&decoded, &[first, second, third].concat());
        assert_eq!(decode_chunk(&[]), (vec![], None));
    }

    #[test]
    fn bad_blocks_are_skipped_and_neighbours_kept() {
        let t = 1_709_294_400_000;
        let a = vec![sample(t, Measurand::Voltage, Some(Phase::L1), 230.1)];
        let b = vec![sample(
            t + 10_000,
            Measurand::Voltage,
            Some(Phase::L1),
            230.2,
        )];
        let c = vec![sample(
            t + 20_000,
            Measurand::Voltage,
            Some(Phase::L1),
            230.3,
        )];
        let mut chunk = Vec::new();
        encode_block(&a, &mut chunk);
        let b_start = chunk.len();
        encode_block(&b, &mut chunk);
        encode_block(&c, &mut chunk);
        let want = [a.clone(), c.clone()].concat();

        // A future format version.
        let mut unknown_version = chunk.clone();
        unknown_version[b_start + 1] = 2;
        let (decoded, error) = decode_chunk(&unknown_version);
        assert_same(&decoded, &want);
        let error = error.unwrap();
        assert_eq!((error.offset, error.bad_blocks), (b_start, 1));
        assert_eq!(error.first, BlockError::UnknownVersion(2));

        // Garbage inside the body: an unknown measurand code in the series descriptor.
        let mut bad_code = chunk.clone();
        let descriptor_at = b_start + 1 + 1 + 6 + 1; // len, version, base_ms, series count
        bad_code[descriptor_at] = 0x7f;
        let (decoded, error) = decode_chunk(&bad_code);
        assert_same(&decoded, &want);
        assert!(matches!(
            error.unwrap().first,
            BlockError::UnknownCode {
                what: "measurand",
                ..
            }
        ));

        // Two bad blocks are both counted.
        let mut two_bad = unknown_version.clone();
        two_bad.extend_from_slice(&[1, 99]);
        encode_block(&c, &mut two_bad);
        let (decoded, error) = decode_chunk(&two_bad);
        assert_same(&decoded, &[a.clone(), c.clone(), c.clone()].concat());
        assert_eq!(error.unwrap().bad_blocks, 2);

        // A torn tail loses only the tail.
        let torn = &chunk[..chunk.len() - 3];
        let (decoded, error) = decode_chunk(torn);
        assert_same(&decoded, &[a, b].concat());
        assert_eq!(error.unwrap().first, BlockError::Framing);
    }

    #[test]
    fn latest_sample_value_round_trips() {
        let mut s = sample(1_709_294_400_000, Measurand::SoC, None, 81.0);
        let bytes = encode_sample_value(&s);
        assert_eq!(decode_sample_value(&bytes), Some(s.clone()));
        println!("latest-sample value: {} bytes", bytes.len());
        s.value = SampleValue::Signed("signed".into());
        assert_eq!(
            decode_sample_value(&encode_sample_value(&s)),
            Some(s.clone())
        );
        let mut two = encode_sample_value(&s);
        two.extend(encode_sample_value(&s));
        assert_eq!(decode_sample_value(&two), None);
        assert_eq!(decode_sample_value(&[]), None);
        assert_eq!(decode_sample_value(&[3, 1, 0]), None);
    }

    #[test]
    fn no_input_bytes_make_the_decoder_panic() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let mut chunk = Vec::new();
        encode_block(&realistic_block(&mut rng, 1_709_294_400_000), &mut chunk);
        let mut mixed = Vec::new();
        let t = 1_709_294_400_000;
        let mut signed = sample(t, Measurand::Voltage, None, 1.0);
        signed.value = SampleValue::Signed("sig".into());
        signed.unit = Unit::Other("x".into());
        let mut with_nanos = sample(t, Measurand::Voltage, None, f64::MAX);
        with_nanos.timestamp = DateTime::from_timestamp(t / 1000, 7).unwrap();
        encode_block(&[signed, with_nanos], &mut mixed);
        chunk.extend_from_slice(&mixed);

        // Every truncation.
        for end in 0..chunk.len() {
            let _ = decode_chunk(&chunk[..end]);
            let _ = decode_sample_value(&chunk[..end]);
        }
        // Every single-byte corruption of the valid chunk, with a few values each.
        for at in 0..chunk.len() {
            for byte in [0x00, 0x01, 0x7f, 0x80, 0xff, rng.next() as u8] {
                let mut bad = chunk.clone();
                bad[at] = byte;
                let _ = decode_chunk(&bad);
            }
        }
        // Random bodies behind a plausible length prefix and version byte, to get past the
        // header, and entirely random bytes.
        for round in 0..20_000 {
            let len = rng.below(64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if round % 2 == 0 {
                let mut framed = Vec::new();
                varint::put_u64(&mut framed, len as u64 + 1);
                framed.push(FORMAT_VERSION);
                framed.append(&mut bytes);
                bytes = framed;
            }
            let _ = decode_chunk(&bytes);
            let _ = decode_sample_value(&bytes);
        }
        // Random edits of a valid chunk, several at a time.
        for _ in 0..5_000 {
            let mut bad = chunk.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bad.len() as u64) as usize;
                bad[at] = rng.next() as u8;
            }
            let _ = decode_chunk(&bad);
        }
    }
}
