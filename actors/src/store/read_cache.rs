//! `ReadCache`: decoded raw chunks and roll-up buckets kept in memory between API reads, bounded
//! in bytes (`reads.cache_bytes`), least recently used first out.
//!
//! A 24 h read of one series decodes 25 hour chunks and a 30-day hourly read parses and decodes
//! 720 bucket hashes every time (issue 13: p99 103-120 ms with the fleet running). Most of that
//! data no longer changes, but "most" is not "all": a charge point uploading stored readings
//! after being offline, a write-ahead log replay after a crash, or another instance on the same
//! Redis can add to an hour that looked closed. So an entry is never served on trust; each read
//! asks Redis, cheaply, whether it still holds:
//!
//! - **Raw chunks** are append-only (`APPEND` and `EXPIREAT` are the only commands that touch
//!   them, in `writer.rs`): an entry remembers the chunk's length, the read sends `STRLEN` and
//!   `GETRANGE <key> <length> -1` instead of `GET`, and decodes only the new tail (blocks are
//!   self-contained, and a tail starts at a block boundary because `APPEND` writes whole blocks).
//!   A chunk shorter than remembered (expired, lost) drops the entry. Open hours are cached the
//!   same way: each read then fetches only what was appended since the previous one.
//! - **Roll-up buckets** are rewritten in place by the merge script, so their content cannot
//!   validate itself. The script keeps a per-charge-point version in the roll-up state hash
//!   (`rv`, [`crate::store::aggregates::ROLLUP_VERSION_FIELD`]) and moves it whenever it writes
//!   a bucket that ends before its clock plus [`CLOSED_MARGIN_MS`]; only buckets that ended
//!   [`CLOSED_MARGIN_MS`] before the reader's clock are cached, each with the version read
//!   *before* its content in the same pipeline. A late write therefore changes the version
//!   every later read compares against, and the whole charge point's cached buckets are read
//!   again. Clocks of instances may differ by up to twice the margin.
//!
//! Everything of one charge point shares its `{cp}` slot, so the validation commands go to the
//! node that holds the data, in Redis Cluster too.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sample::{Measurand, Phase};
use crate::store::aggregates::{BucketRetention, Period, StoredBucket};
use crate::store::hour_samples::HourSamples;
use crate::FastHashMap;

/// How far apart "closed" is put from the bucket's end, on both sides: the merge script moves
/// the version for writes into buckets ending before its clock plus this, readers cache buckets
/// ending before their clock minus this. Covers clocks of instances up to 10 minutes apart; a
/// live charge point's flush in the last 5 minutes of an hour moves its version (costing a
/// re-read, never a stale answer).
pub const CLOSED_MARGIN_MS: i64 = 5 * 60_000;

/// The series a meter-values read asks for; the decoded hour is cached per selection, since a
/// read of one series out of ten decodes only that one (`chunk::decode_chunk_matching`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesSelection {
    /// Only this measurand.
    pub measurand: Option<Measurand>,
    /// Only this connector.
    pub connector_id: Option<u32>,
    /// Only this phase.
    pub phase: Option<Phase>,
}

/// What the cache is keyed by: one charge point's hour chunk for one series selection, or one
/// of its roll-up buckets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Raw(Arc<str>, i64, SeriesSelection),
    Bucket(Arc<str>, Period, i64),
}

/// The decoded (and, for meter-values reads, rendered) samples of one hour chunk for one
/// selection, and the chunk's length in bytes when they were decoded (the validation: the chunk
/// only grows).
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// Bytes of the chunk that `hour` was decoded from.
    pub len: usize,
    /// The samples of the selection, every time of the hour, sorted (see [`HourSamples`]).
    pub hour: Arc<HourSamples>,
}

/// One roll-up bucket hash as decoded and rendered, valid while the charge point's roll-up
/// version is `version`.
#[derive(Debug)]
pub struct BucketEntry {
    /// The roll-up version read before the content (see the module documentation).
    pub version: Arc<str>,
    /// Its series, sorted, each with its JSON rendering for the API (rendered once, copied
    /// into every answer: serialising was a third of the 30-day read).
    pub series: Vec<(StoredBucket, Box<str>)>,
}

impl BucketEntry {
    /// Heap the entry keeps, counted against the cache's bound.
    pub fn heap_bytes(&self) -> usize {
        self.version.len()
            + self
                .series
                .iter()
                .map(|(b, json)| {
                    std::mem::size_of::<(StoredBucket, Box<str>)>()
                        + b.series.unit.len()
                        + json.len()
                })
                .sum::<usize>()
    }
}

#[derive(Debug, Clone)]
enum Value {
    Raw(RawEntry),
    Bucket(Arc<BucketEntry>),
}

/// Counters for `/metrics` (`ocpp_read_cache_*`) and tests; atomics so they are read without the
/// lock.
#[derive(Debug, Default)]
pub struct ReadCacheStats {
    /// Entries found and still valid (a raw entry that only needed its new tail counts here).
    pub hits: AtomicU64,
    /// Lookups that found nothing, or an entry Redis showed to be out of date.
    pub misses: AtomicU64,
    /// Entries dropped because Redis showed them out of date.
    pub invalidated: AtomicU64,
    /// Entries dropped to stay within the byte bound.
    pub evicted: AtomicU64,
    /// Bytes held now (estimated: the decoded structures and their renderings).
    pub bytes: AtomicU64,
    /// Entries held now.
    pub entries: AtomicU64,
}

struct Slot {
    value: Value,
    bytes: usize,
    tick: u64,
}

#[derive(Default)]
struct Inner {
    slots: FastHashMap<Key, Slot>,
    /// Last use -> key: the least recently used entry is the first.
    order: BTreeMap<u64, Key>,
    bytes: usize,
    tick: u64,
}

/// See the module documentation. Shared by the API's workers (`Arc`); the lock is held only to
/// look up, insert or drop entries, never across a Redis round trip.
pub struct ReadCache {
    inner: Mutex<Inner>,
    limit: usize,
    retention: BucketRetention,
    stats: Arc<ReadCacheStats>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("limit", &self.limit)
            .field("stats", &self.stats)
            .finish()
    }
}

impl ReadCache {
    /// A cache holding at most `limit_bytes` (0: caches nothing, every read goes to Redis in
    /// full as before), of roll-up buckets that live as long as `retention` says (a bucket about
    /// to expire in Redis is not cached).
    pub fn new(limit_bytes: usize, retention: BucketRetention) -> Self {
        ReadCache {
            inner: Mutex::new(Inner::default()),
            limit: limit_bytes,
            retention,
            stats: Arc::new(ReadCacheStats::default()),
        }
    }

    /// The counters, for `/metrics`.
    pub fn stats(&self) -> Arc<ReadCacheStats> {
        self.stats.clone()
    }

    /// A cache that holds nothing: reads through it go to Redis in full.
    pub fn disabled() -> Self {
        ReadCache::new(0, BucketRetention::default())
    }

    /// How long roll-up buckets live in Redis.
    pub fn bucket_retention(&self) -> BucketRetention {
        self.retention
    }

    /// Whether anything is cached at all.
    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (no await, no partial update
        // that matters for correctness beyond the byte count): keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached decode of `charge_point`'s chunk of `hour` for `selection`, if any (to be
    /// validated against the chunk's length before use).
    pub fn raw(
        &self,
        charge_point: &str,
        hour: i64,
        selection: SeriesSelection,
    ) -> Option<RawEntry> {
        let key = Key::Raw(charge_point.into(), hour, selection);
        match self.touch(&key)? {
            Value::Raw(entry) => Some(entry),
            Value::Bucket(_) => None,
        }
    }

    /// Caches the decode of a chunk of `len` bytes (its rendering counts against the bound).
    pub fn put_raw(
        &self,
        charge_point: &str,
        hour: i64,
        selection: SeriesSelection,
        entry: RawEntry,
    ) {
        let bytes = 96 + entry.hour.heap_bytes();
        let key = Key::Raw(charge_point.into(), hour, selection);
        self.insert(key, Value::Raw(entry), bytes);
    }

    /// Drops a cached chunk decode Redis showed to be out of date.
    pub fn invalidate_raw(&self, charge_point: &str, hour: i64, selection: SeriesSelection) {
        self.remove(&Key::Raw(charge_point.into(), hour, selection));
    }

    /// The cached bucket of `period` starting at `start_ms`, if any (valid only while the charge
    /// point's roll-up version equals its `version`).
    pub fn bucket(
        &self,
        charge_point: &str,
        period: Period,
        start_ms: i64,
    ) -> Option<Arc<BucketEntry>> {
        match self.touch(&Key::Bucket(charge_point.into(), period, start_ms))? {
            Value::Bucket(entry) => Some(entry),
            Value::Raw(_) => None,
        }
    }

    /// Caches a decoded and rendered bucket.
    pub fn put_bucket(
        &self,
        charge_point: &str,
        period: Period,
        start_ms: i64,
        entry: Arc<BucketEntry>,
    ) {
        let bytes = 96 + entry.heap_bytes();
        let key = Key::Bucket(charge_point.into(), period, start_ms);
        self.insert(key, Value::Bucket(entry), bytes);
    }

    /// Drops a cached bucket Redis showed to be out of date.
    pub fn invalidate_bucket(&self, charge_point: &str, period: Period, start_ms: i64) {
        self.remove(&Key::Bucket(charge_point.into(), period, start_ms));
    }

    /// Counts a lookup that Redis confirmed.
    pub fn hit(&self) {
        self.hits(1);
    }

    /// Counts `n` lookups served from memory at once (a read answered whole from memory).
    pub fn hits(&self, n: usize) {
        self.stats.hits.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts a lookup that had to read and decode in full.
    pub fn miss(&self) {
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
    }

    fn touch(&self, key: &Key) -> Option<Value> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let slot = inner.slots.get_mut(key)?;
        let old = std::mem::replace(&mut slot.tick, tick);
        let value = slot.value.clone();
        inner.order.remove(&old);
        inner.order.insert(tick, key.clone());
        Some(value)
    }

    fn insert(&self, key: Key, value: Value, bytes: usize) {
        // An entry larger than a quarter of the bound would push out most others for one read.
        if !self.enabled() || bytes > self.limit / 4 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.slots.insert(key.clone(), Slot { value, bytes, tick }) {
            inner.order.remove(&old.tick);
            inner.bytes -= old.bytes;
        }
        inner.order.insert(tick, key);
        inner.bytes += bytes;
        let mut evicted = 0;
        while inner.bytes > self.limit {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(slot) = inner.slots.remove(&oldest) {
                inner.bytes -= slot.bytes;
                evicted += 1;
            }
        }
        self.stats.evicted.fetch_add(evicted, Ordering::Relaxed);
        self.publish(&inner);
    }

    fn remove(&self, key: &Key) {
        let mut inner = self.lock();
        if let Some(slot) = inner.slots.remove(key) {
            inner.order.remove(&slot.tick);
            inner.bytes -= slot.bytes;
            self.stats.invalidated.fetch_add(1, Ordering::Relaxed);
            self.publish(&inner);
        }
    }

    fn publish(&self, inner: &Inner) {
        self.stats
            .bytes
            .store(inner.bytes as u64, Ordering::Relaxed);
        self.stats
            .entries
            .store(inner.slots.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Sample;

    /// Bytes of one cached sample, unrendered.
    fn sample_bytes() -> usize {
        std::mem::size_of::<Sample>()
    }

    fn selection() -> SeriesSelection {
        SeriesSelection {
            measurand: None,
            connector_id: None,
            phase: None,
        }
    }

    fn entry(samples: usize) -> RawEntry {
        RawEntry {
            len: samples,
            hour: Arc::new(HourSamples {
                samples: vec![test_sample(); samples],
                rendered: None,
            }),
        }
    }

    fn test_sample() -> Sample {
        Sample {
            timestamp: chrono::DateTime::from_timestamp_millis(1_764_000_000_000)
                .unwrap_or_default(),
            connector_id: 1,
            transaction_id: None,
            measurand: Measurand::Voltage,
            phase: Some(Phase::L1N),
            location: crate::sample::Location::Outlet,
            context: crate::sample::ReadingContext::SamplePeriodic,
            unit: crate::sample::Unit::V,
            value: crate::sample::SampleValue::Number(230.0),
        }
    }

    #[test]
    fn the_byte_bound_evicts_the_least_recently_used() {
        let one = 96 + 100 * sample_bytes();
        let cache = ReadCache::new(4 * one + 10, BucketRetention::default());
        for hour in 0..4 {
            cache.put_raw("CP", hour, selection(), entry(100));
        }
        // Use hour 0, so hour 1 is the oldest when hour 4 arrives.
        assert!(cache.raw("CP", 0, selection()).is_some());
        cache.put_raw("CP", 4, selection(), entry(100));
        assert!(cache.raw("CP", 1, selection()).is_none());
        assert!(cache.raw("CP", 0, selection()).is_some());
        let stats = cache.stats();
        assert_eq!(stats.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(stats.entries.load(Ordering::Relaxed), 4);
        assert!(stats.bytes.load(Ordering::Relaxed) as usize <= 4 * one + 10);
        cache.invalidate_raw("CP", 0, selection());
        assert!(cache.raw("CP", 0, selection()).is_none());
        assert_eq!(stats.entries.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_rendering_counts_against_the_bound() {
        let render = |_: &Sample, out: &mut Vec<u8>| out.extend_from_slice(&[b'x'; 1000]);
        let hour = HourSamples::from_stored(vec![test_sample(); 10], Some(&render));
        let rendered = 96 + hour.heap_bytes();
        assert!(rendered >= 96 + 10 * sample_bytes() + 1001, "{rendered}");
        let cache = ReadCache::new(4 * rendered, BucketRetention::default());
        let put = |h: i64, hour: &Arc<HourSamples>| {
            cache.put_raw(
                "CP",
                h,
                selection(),
                RawEntry {
                    len: 1,
                    hour: hour.clone(),
                },
            )
        };
        let hour = Arc::new(hour);
        for h in 0..4 {
            put(h, &hour);
        }
        let stats = cache.stats();
        assert_eq!(stats.bytes.load(Ordering::Relaxed) as usize, 4 * rendered);
        put(4, &hour);
        assert_eq!(stats.evicted.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_zero_bound_caches_nothing_and_oversized_entries_are_not_kept() {
        let cache = ReadCache::disabled();
        cache.put_raw("CP", 0, selection(), entry(1));
        assert!(cache.raw("CP", 0, selection()).is_none());
        let small = ReadCache::new(4 * (96 + 10 * sample_bytes()), BucketRetention::default());
        small.put_raw("CP", 0, selection(), entry(11));
        assert!(small.raw("CP", 0, selection()).is_none());
        small.put_raw("CP", 0, selection(), entry(10));
        assert!(small.raw("CP", 0, selection()).is_some());
    }
}
