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
use std::sync::Arc;

use crate::redis_pool::Pool;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;

use crate::sample::{Measurand, Phase, Sample, Unit};
use crate::store::keys;
use crate::store::read_cache::{BucketEntry, ReadCache, CLOSED_MARGIN_MS};
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

    /// The starts (unix ms) of every bucket whose start lies in `[from, to)`: what a roll-up
    /// query over that range answers, the same for a charge point, the fleet and an idTag.
    pub fn starts_in(self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<i64> {
        let len = self.length_ms();
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let mut start = self.start_of(from_ms);
        if start < from_ms {
            start += len;
        }
        let mut starts = Vec::new();
        while start < to_ms {
            starts.push(start);
            start += len;
        }
        starts
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

/// Field of the roll-up state hash ([`keys::aggregate_state`]) holding the charge point's
/// roll-up version: moved by the merge script whenever it writes a closed bucket, compared by
/// the read cache before it serves a cached bucket (`store::read_cache`).
pub const ROLLUP_VERSION_FIELD: &str = "rv";

/// The series of one bucket hash, decoded and sorted; unreadable fields are logged and left out.
fn decode_bucket(
    charge_point: &str,
    period: Period,
    start: i64,
    hash: HashMap<String, String>,
) -> Vec<StoredBucket> {
    let Some(at) = DateTime::from_timestamp_millis(start) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(hash.len());
    for (field, value) in hash {
        if field.starts_with('/') {
            // Not a series: the bucket's fleet summary (`store/fleet_rollup.rs`).
            continue;
        }
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
    // A hash's fields come in no order.
    out.sort_by(|a, b| a.series.cmp(&b.series));
    out
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
    let starts = period.starts_in(from, to);
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
    Ok(starts
        .iter()
        .zip(hashes)
        .flat_map(|(start, hash)| decode_bucket(charge_point, period, *start, hash))
        .collect())
}

/// How long roll-up buckets live, so the read cache never serves a bucket Redis has let expire
/// (the fleet is meant to share one configuration).
#[derive(Debug, Clone, Copy, Default)]
pub struct BucketRetention {
    /// `retention.hourly_days`.
    pub hourly_days: u32,
    /// `retention.daily_days`.
    pub daily_days: u32,
}

/// Ends of buckets this close to their expiry are not cached (nor served from the cache).
const EXPIRY_MARGIN_MS: i64 = 3_600_000;

/// The buckets of [`read_buckets`], each bucket hash with its series rendered by `render` (the
/// API's JSON of one bucket), through `cache`. Closed buckets (ended [`CLOSED_MARGIN_MS`]
/// before now, and not about to expire) come from the cache when the charge point's roll-up
/// version, read first in the same pipeline, still equals the one they were cached under; the
/// others are read with `HGETALL` and cached under the version read before them. A moved
/// version (a late write into a closed bucket) reads the cached buckets of this read again, in
/// a second pipeline.
pub async fn read_buckets_cached(
    pool: &Pool,
    cache: &ReadCache,
    charge_point: &str,
    period: Period,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    render: &(dyn Fn(&StoredBucket) -> String + Sync),
) -> Result<Vec<Arc<BucketEntry>>, ReadError> {
    let (entries, _) =
        read_buckets_cached_beside(pool, cache, charge_point, period, from, to, render, None)
            .await?;
    Ok(entries)
}

/// [`read_buckets_cached`], with a `GET` of the string key `beside` (one of the charge point's
/// own keys) in its first pipeline: one round trip to Redis for a read that needs one more
/// small value (the admin API's owner record). The second value is `Some(value of beside)`
/// when it was read (`Some(None)`: no such key), `None` when not asked or no bucket is in
/// the range.
#[allow(clippy::too_many_arguments)] // the arguments of `read_buckets_cached` and the key
pub async fn read_buckets_cached_beside(
    pool: &Pool,
    cache: &ReadCache,
    charge_point: &str,
    period: Period,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    render: &(dyn Fn(&StoredBucket) -> String + Sync),
    beside: Option<&str>,
) -> Result<(Vec<Arc<BucketEntry>>, Option<Option<String>>), ReadError> {
    if period.starts_in(from, to).is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut conn = pool.get().await?;
    read_buckets_cached_on(
        &mut conn,
        cache,
        charge_point,
        period,
        from,
        to,
        render,
        beside,
    )
    .await
}

/// [`read_buckets_cached_beside`] over a connection the caller holds (the admin API's tracked
/// connection, `store::tracked_reads`).
#[allow(clippy::too_many_arguments)] // the arguments of `read_buckets_cached_beside`
pub async fn read_buckets_cached_on<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    cache: &ReadCache,
    charge_point: &str,
    period: Period,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    render: &(dyn Fn(&StoredBucket) -> String + Sync),
    beside: Option<&str>,
) -> Result<(Vec<Arc<BucketEntry>>, Option<Option<String>>), ReadError> {
    let retention = cache.bucket_retention();
    let read = BucketRead {
        cache,
        charge_point,
        period,
        starts: period.starts_in(from, to),
        now_ms: Utc::now().timestamp_millis(),
        keep_days: match period {
            Period::Hour => retention.hourly_days,
            Period::Day => retention.daily_days,
        },
        render,
    };
    if read.starts.is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut found: Vec<Option<Arc<BucketEntry>>> = read
        .starts
        .iter()
        .map(|&start| {
            if cache.enabled() && read.cacheable(start) {
                cache.bucket(charge_point, period, start)
            } else {
                None
            }
        })
        .collect();
    let missing: Vec<usize> = (0..found.len()).filter(|&i| found[i].is_none()).collect();
    let (version, beside) = read.fetch(conn, &missing, &mut found, beside).await?;
    // Cached buckets are valid only under the version read now.
    let stale: Vec<usize> = (0..found.len())
        .filter(|&i| !missing.contains(&i))
        .filter(|&i| {
            found[i]
                .as_ref()
                .is_none_or(|entry| version.as_deref() != Some(&*entry.version))
        })
        .collect();
    cache.hits(found.len() - missing.len() - stale.len());
    if !stale.is_empty() {
        for &i in &stale {
            cache.invalidate_bucket(charge_point, period, read.starts[i]);
            found[i] = None;
        }
        read.fetch(conn, &stale, &mut found, None).await?;
    }
    Ok((found.into_iter().flatten().collect(), beside))
}

/// One cached roll-up read in progress (see [`read_buckets_cached`]).
struct BucketRead<'a> {
    cache: &'a ReadCache,
    charge_point: &'a str,
    period: Period,
    /// Starts (unix ms) of the buckets asked for, ascending.
    starts: Vec<i64>,
    /// The reader's clock, which decides what counts as closed.
    now_ms: i64,
    /// Days the period's buckets live after their end.
    keep_days: u32,
    render: &'a (dyn Fn(&StoredBucket) -> String + Sync),
}

impl BucketRead<'_> {
    /// Whether the bucket starting at `start` may be cached: closed by the margin, and far
    /// enough from its expiry.
    fn cacheable(&self, start: i64) -> bool {
        start + self.period.length_ms() <= self.now_ms - CLOSED_MARGIN_MS
            && self.period.expires_at(start, self.keep_days) * 1000 > self.now_ms + EXPIRY_MARGIN_MS
    }

    /// Reads the roll-up version, the string key `beside` if given, then the buckets `which`
    /// (indexes into `starts`), in one pipeline; decodes and renders them into `found`, caching
    /// the cacheable ones under that version. Returns the version (`None`: the state hash has
    /// none yet; nothing is cached) and `beside`'s value if it was asked for.
    async fn fetch<C: redis::aio::ConnectionLike + Send>(
        &self,
        conn: &mut C,
        which: &[usize],
        found: &mut [Option<Arc<BucketEntry>>],
        beside: Option<&str>,
    ) -> Result<(Option<Arc<str>>, Option<Option<String>>), ReadError> {
        let (cp, period) = (self.charge_point, self.period);
        let mut pipe = redis::pipe();
        pipe.hget(keys::aggregate_state(cp), ROLLUP_VERSION_FIELD);
        if let Some(key) = beside {
            pipe.get(key);
        }
        let head = 1 + usize::from(beside.is_some());
        for &i in which {
            pipe.hgetall(keys::aggregate_bucket(
                cp,
                period.as_str(),
                self.starts[i] / 1000,
            ));
        }
        let parse_error = |e: redis::ParsingError| ReadError::Redis(e.into());
        let mut replies: Vec<redis::Value> = pipe.query_async(conn).await?;
        let hashes = replies
            .split_off(head.min(replies.len()))
            .into_iter()
            .map(|reply| redis::from_redis_value(reply).map_err(parse_error))
            .collect::<Result<Vec<HashMap<String, String>>, ReadError>>()?;
        let beside = match beside {
            Some(_) => Some(match replies.pop() {
                Some(reply) => {
                    redis::from_redis_value::<Option<String>>(reply).map_err(parse_error)?
                }
                None => None,
            }),
            None => None,
        };
        let version: Option<String> = match replies.pop() {
            Some(reply) => redis::from_redis_value(reply).map_err(parse_error)?,
            None => None,
        };
        let version: Option<Arc<str>> = version.map(Arc::from);
        for (&i, hash) in which.iter().zip(hashes) {
            let start = self.starts[i];
            let series = decode_bucket(cp, period, start, hash)
                .into_iter()
                .map(|bucket| {
                    let json = (self.render)(&bucket).into_boxed_str();
                    (bucket, json)
                })
                .collect();
            let entry = Arc::new(BucketEntry {
                version: version.clone().unwrap_or_else(|| Arc::from("")),
                series,
            });
            if self.cache.enabled() && self.cacheable(start) {
                self.cache.miss();
                if version.is_some() {
                    self.cache.put_bucket(cp, period, start, Arc::clone(&entry));
                }
            }
            found[i] = Some(entry);
        }
        Ok((version, beside))
    }
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
