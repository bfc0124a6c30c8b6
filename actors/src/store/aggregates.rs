//! Hourly and daily roll-ups in Redis: the stored record, the energy split, the Lua script that
//! merges a flush atomically, and the reads behind the aggregates API.
//!
//! One hash per charge point, period and bucket (`keys::aggregate_bucket`), one field per
//! series (`<connector>:<measurand>:<phase or ->:<unit>`), whose value is a [`Rollup`] as
//! `count|sum|min|max|first|first_at|last|last_at|energy_wh` (times in unix ms, numbers with 17
//! significant digits so they round-trip). Per charge point, the hash `keys::aggregate_state`
//! holds the energy baseline of every register series (`e:<series>` -> `t_ms|value`) and, per
//! server instance, the sequence number of the last flush it applied (`applied:<instance>`), which
//! makes a retried flush idempotent.

use std::collections::HashMap;

use crate::redis_pool::Pool;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;

use crate::sample::{Measurand, Phase, Sample, Unit};
use crate::store::keys;
use crate::store::reads::ReadError;

/// Average power above which a register difference is taken for a meter replacement or a
/// corrupt reading rather than consumption: 1 MW is well above any charge point (350 kW HPC),
/// and a new meter whose register is 100 MWh above the old one would otherwise book 100 MWh.
pub const MAX_PLAUSIBLE_POWER_W: f64 = 1_000_000.0;

/// The Lua script that merges one charge point's flush into Redis (see its header comment).
pub const MERGE_SCRIPT: &str = include_str!("aggregate_merge.lua");

/// Roll-up period; buckets are aligned to UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// One UTC hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Period {
    /// Both periods, in the order a flush writes them.
    pub const ALL: [Period; 2] = [Period::Hour, Period::Day];

    /// Length of a bucket in milliseconds.
    pub fn length_ms(self) -> i64 {
        match self {
            Period::Hour => 3_600_000,
            Period::Day => 86_400_000,
        }
    }

    /// Start (unix ms) of the bucket holding `t_ms`.
    pub fn start_of(self, t_ms: i64) -> i64 {
        t_ms.div_euclid(self.length_ms()) * self.length_ms()
    }

    /// The name used in keys and in the API (`hour`, `day`).
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }

    /// Reads `hour` or `day`.
    pub fn parse(text: &str) -> Option<Period> {
        match text {
            "hour" => Some(Period::Hour),
            "day" => Some(Period::Day),
            _ => None,
        }
    }

    /// Unix time (seconds) at which the bucket starting at `start_ms` expires: `keep_days`
    /// after its end, a fixed function of the bucket so every writer and retry agrees.
    pub fn expires_at(self, start_ms: i64, keep_days: u32) -> i64 {
        (start_ms + self.length_ms()).div_euclid(1000) + i64::from(keep_days) * 86_400
    }
}

/// What a roll-up is kept per: a charge point's connector, measurand, phase (and the unit, so a
/// verbatim unknown unit is never mixed with the normalised one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Connector (0 = the whole charge point).
    pub connector_id: u32,
    /// Quantity.
    pub measurand: Measurand,
    /// Phase, if any.
    pub phase: Option<Phase>,
    /// Normalised unit, as spelled in storage.
    pub unit: String,
}

impl SeriesKey {
    /// The series of a sample.
    pub fn of(sample: &Sample) -> SeriesKey {
        SeriesKey {
            connector_id: sample.connector_id,
            measurand: sample.measurand,
            phase: sample.phase,
            unit: sample.unit.as_str().to_owned(),
        }
    }

    /// Hash field naming the series, e.g. `1:Voltage:L1-N:V`; the unit goes last because an
    /// unknown unit is free text.
    pub fn field(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.connector_id,
            self.measurand,
            self.phase.map_or("-", |p| p.as_str()),
            self.unit
        )
    }

    /// Inverse of [`Self::field`]; `None` for fields this build cannot read.
    pub fn parse(field: &str) -> Option<SeriesKey> {
        let mut parts = field.splitn(4, ':');
        let connector_id = parts.next()?.parse().ok()?;
        let measurand = Measurand::parse(parts.next()?)?;
        let phase = match parts.next()? {
            "-" => None,
            p => Some(Phase::parse(p)?),
        };
        let unit = parts.next()?.to_owned();
        Some(SeriesKey {
            connector_id,
            measurand,
            phase,
            unit,
        })
    }
}

/// The statistics of one series in one bucket. Mergeable in any order, which is what lets
/// flushes, restarts and several instances add to the same bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollup {
    /// Readings.
    pub count: u64,
    /// Sum of the readings (avg = sum / count, computed when read).
    pub sum: f64,
    /// Smallest reading (`None` when `count` is 0: a bucket may hold only split-off energy).
    pub min: Option<f64>,
    /// Largest reading.
    pub max: Option<f64>,
    /// Earliest reading by sample time, and that time (unix ms).
    pub first: Option<(i64, f64)>,
    /// Latest reading by sample time, and that time (unix ms).
    pub last: Option<(i64, f64)>,
    /// Energy consumed in the bucket (registers only), Wh or varh.
    pub energy: f64,
}

impl Rollup {
    /// Adds one reading taken at `t_ms`.
    pub fn add(&mut self, t_ms: i64, value: f64) {
        self.merge(&Rollup {
            count: 1,
            sum: value,
            min: Some(value),
            max: Some(value),
            first: Some((t_ms, value)),
            last: Some((t_ms, value)),
            energy: 0.0,
        });
    }

    /// Folds `other` in. Ties on time keep the earlier-merged first and take the later-merged
    /// last, the same rule as the Lua script.
    pub fn merge(&mut self, other: &Rollup) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = pick(self.min, other.min, f64::min);
        self.max = pick(self.max, other.max, f64::max);
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, other.last) {
            (Some(a), Some(b)) => Some(if b.0 >= a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.energy += other.energy;
    }

    /// Mean of the readings.
    pub fn avg(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    /// The stored form (see the module documentation).
    pub fn encode(&self) -> String {
        let num = |v: Option<f64>| v.map(fmt_num).unwrap_or_default();
        let at = |v: Option<(i64, f64)>| v.map(|(t, _)| t.to_string()).unwrap_or_default();
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.count,
            fmt_num(self.sum),
            num(self.min),
            num(self.max),
            num(self.first.map(|f| f.1)),
            at(self.first),
            num(self.last.map(|l| l.1)),
            at(self.last),
            fmt_num(self.energy),
        )
    }

    /// Inverse of [`Self::encode`] (also reads what the Lua script writes).
    pub fn decode(text: &str) -> Option<Rollup> {
        // Nine fields, no more, no fewer; no Vec (a 30-day read decodes ~7,200 of these).
        let mut split = text.split('|');
        let mut parts = [""; 9];
        for part in &mut parts {
            *part = split.next()?;
        }
        if split.next().is_some() {
            return None;
        }
        let num = |s: &str| -> Option<Option<f64>> {
            if s.is_empty() {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        let at = |s: &str| -> Option<Option<i64>> {
            if s.is_empty() {
                Some(None)
            } else {
                // The script writes times through %.17g, which may add ".0" or an exponent.
                s.parse::<f64>().ok().map(|t| Some(t as i64))
            }
        };
        let pair = |t: Option<i64>, v: Option<f64>| t.zip(v);
        Some(Rollup {
            count: parts[0].parse::<f64>().ok()? as u64,
            sum: parts[1].parse().ok()?,
            min: num(parts[2])?,
            max: num(parts[3])?,
            first: pair(at(parts[5])?, num(parts[4])?),
            last: pair(at(parts[7])?, num(parts[6])?),
            energy: parts[8].parse().ok()?,
        })
    }
}

fn pick(a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

/// Numbers as the script writes them: shortest round-trip form.
fn fmt_num(v: f64) -> String {
    format!("{v:?}")
}

/// The last processed reading of a register series: `(t_ms, value)`.
pub type Baseline = (i64, f64);

/// Energy of register readings against a baseline, the reference for the Lua script (which
/// applies the same rules server-side): readings are taken in the given order; one that is not
/// newer than the baseline contributes nothing and leaves it alone; otherwise the difference
/// to the baseline is spread over the time between them, linearly, split at every bucket
/// boundary of `period` — unless it is negative (meter reset or replacement) or implies more
/// than [`MAX_PLAUSIBLE_POWER_W`], then it contributes 0 — and the reading becomes the
/// baseline. Returns the energy per bucket start (ms) and the new baseline.
pub fn register_energy(
    period: Period,
    mut baseline: Option<Baseline>,
    readings: &[(i64, f64)],
) -> (Vec<(i64, f64)>, Option<Baseline>) {
    let mut out: Vec<(i64, f64)> = Vec::new();
    for &(t, v) in readings {
        match baseline {
            None => baseline = Some((t, v)),
            Some((bt, bv)) if t > bt => {
                let d = v - bv;
                if d > 0.0 && d * 3_600_000.0 <= MAX_PLAUSIBLE_POWER_W * (t - bt) as f64 {
                    split(period, bt, t, d, &mut out);
                }
                baseline = Some((t, v));
            }
            Some(_) => {}
        }
    }
    (out, baseline)
}

fn split(period: Period, t0: i64, t1: i64, energy: f64, out: &mut Vec<(i64, f64)>) {
    let len = period.length_ms();
    let mut start = period.start_of(t0);
    while start < t1 {
        let overlap = (start + len).min(t1) - start.max(t0);
        let part = energy * overlap as f64 / (t1 - t0) as f64;
        match out.iter_mut().find(|(s, _)| *s == start) {
            Some((_, e)) => *e += part,
            None => out.push((start, part)),
        }
        start += len;
    }
}

/// One bucket of one series as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBucket {
    /// Bucket start.
    pub start: DateTime<Utc>,
    /// Which series.
    pub series: SeriesKey,
    /// Its statistics.
    pub rollup: Rollup,
}

/// Every stored bucket of `period` whose start lies in `[from, to)`, in one round trip (one
/// `HGETALL` per bucket key, pipelined), sorted by start then series.
pub async fn read_buckets(
    pool: &Pool,
    charge_point: &str,
    period: Period,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<StoredBucket>, ReadError> {
    let len = period.length_ms();
    let from_ms = from.timestamp_millis();
    let to_ms = to.timestamp_millis();
    let mut starts = Vec::new();
    let mut start = period.start_of(from_ms);
    if start < from_ms {
        start += len;
    }
    while start < to_ms {
        starts.push(start);
        start += len;
    }
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for start in &starts {
        pipe.hgetall(keys::aggregate_bucket(
            charge_point,
            period.as_str(),
            start / 1000,
        ));
    }
    let mut conn = pool.get().await?;
    let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
    let mut out = Vec::new();
    for (start, hash) in starts.iter().zip(hashes) {
        let Some(at) = DateTime::from_timestamp_millis(*start) else {
            continue;
        };
        let first = out.len();
        for (field, value) in hash {
            match (SeriesKey::parse(&field), Rollup::decode(&value)) {
                (Some(series), Some(rollup)) => out.push(StoredBucket {
                    start: at,
                    series,
                    rollup,
                }),
                _ => log::warn!(
                    "{charge_point}: unreadable roll-up field {field:?} in the {} bucket at {at}.",
                    period.as_str()
                ),
            }
        }
        // Starts ascend already; only a hash's fields come in no order.
        out[first..].sort_by(|a, b| a.series.cmp(&b.series));
    }
    Ok(out)
}

/// The unit of a stored series as the API shows it.
pub fn unit_of(series: &SeriesKey) -> Unit {
    (0..=11)
        .filter_map(Unit::from_code)
        .find(|u| u.as_str() == series.unit)
        .unwrap_or_else(|| Unit::Other(series.unit.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_round_trips_and_merges() {
        let mut a = Rollup::default();
        a.add(2_000, 5.5);
        a.add(1_000, 7.0);
        a.add(3_000, 0.1 + 0.2);
        assert_eq!(a.count, 3);
        assert_eq!(a.min, Some(0.1 + 0.2));
        assert_eq!(a.max, Some(7.0));
        assert_eq!(a.first, Some((1_000, 7.0)));
        assert_eq!(a.last, Some((3_000, 0.1 + 0.2)));
        assert_eq!(Rollup::decode(&a.encode()), Some(a.clone()));
        let empty = Rollup {
            energy: 12.5,
            ..Rollup::default()
        };
        assert_eq!(Rollup::decode(&empty.encode()), Some(empty.clone()));
        a.merge(&empty);
        assert_eq!(a.energy, 12.5);
        assert_eq!(a.count, 3);
        assert_eq!(Rollup::decode("1|2|3"), None);
        assert_eq!(Rollup::decode("1|2|3|4|5|6|7|8|9|10"), None);
    }

    #[test]
    fn series_fields_round_trip() {
        let key = SeriesKey {
            connector_id: 2,
            measurand: Measurand::Voltage,
            phase: Some(Phase::L1N),
            unit: "V".into(),
        };
        assert_eq!(key.field(), "2:Voltage:L1-N:V");
        assert_eq!(SeriesKey::parse(&key.field()), Some(key.clone()));
        let odd = SeriesKey {
            phase: None,
            unit: "furlong:s".into(),
            ..key
        };
        assert_eq!(SeriesKey::parse(&odd.field()), Some(odd.clone()));
        assert_eq!(unit_of(&odd), Unit::Other("furlong:s".into()));
    }

    #[test]
    fn buckets_expire_after_their_end() {
        assert_eq!(Period::Hour.expires_at(3_600_000, 30), 7200 + 30 * 86_400);
        assert_eq!(Period::Day.start_of(86_400_000 + 5), 86_400_000);
        assert_eq!(Period::Hour.start_of(-1), -3_600_000);
    }
}
