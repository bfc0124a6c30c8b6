//! Reads used by the admin API. Writes belong to the writer alone; these only look.

use std::collections::HashMap;
use std::sync::Arc;

use crate::redis_pool::Pool;
use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, AsyncCommands};

use crate::sample::Sample;
use crate::store::chunk::{self, SampleFilter};
use crate::store::hour_samples::{HourSamples, RenderSample};
use crate::store::keys;
use crate::store::read_cache::{RawEntry, ReadCache, SeriesSelection};

/// Why a read failed: Redis was unreachable or answered with an error. The API turns it into 503.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No connection could be had.
    #[error("Redis is unavailable: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// The command failed.
    #[error("Redis read failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Stored record of a charge point (hash `info` plus hash `connectors`).
#[derive(Debug, Clone, Default)]
pub struct ChargePointRecord {
    /// Fields of the info hash (vendor, model, firmware_version, last_seen, connected, ...).
    pub info: HashMap<String, String>,
    /// Connector statuses as stored: connector id -> JSON document.
    pub connectors: HashMap<String, String>,
}

/// Stored record of a transaction (hash fields as written by the writer).
pub type TransactionRecord = HashMap<String, String>;

/// Raw samples of one charge point with `from <= timestamp < to`, in storage order (callers
/// sort and de-duplicate after merging what is still buffered).
pub async fn samples_in_range(
    pool: &Pool,
    charge_point: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Sample>, ReadError> {
    let filter = SampleFilter {
        from: Some(from),
        to: Some(to),
        ..SampleFilter::default()
    };
    samples_matching(pool, charge_point, &filter, usize::MAX).await
}

/// Raw samples of one charge point that `filter` matches (its `from` and `to` are required),
/// decoded hour by hour, oldest hour first, in storage order within an hour. Decoding stops once
/// at least `limit` distinct readings are in hand: every later hour only holds later readings,
/// which a caller taking the `limit` oldest would drop anyway.
pub async fn samples_matching(
    pool: &Pool,
    charge_point: &str,
    filter: &SampleFilter,
    limit: usize,
) -> Result<Vec<Sample>, ReadError> {
    samples_matching_cached(pool, &ReadCache::disabled(), charge_point, filter, limit).await
}

/// [`samples_matching`] through `cache`: the samples of the hours [`hours_matching_cached`]
/// reads, within the range, oldest hour first, sorted by identity within each hour (repeats
/// kept). Stops after the hour in which at least `limit` distinct readings are in hand.
pub async fn samples_matching_cached(
    pool: &Pool,
    cache: &ReadCache,
    charge_point: &str,
    filter: &SampleFilter,
    limit: usize,
) -> Result<Vec<Sample>, ReadError> {
    let (Some(from), Some(to)) = (filter.from, filter.to) else {
        return Ok(Vec::new());
    };
    let hours = hours_matching_cached(pool, cache, charge_point, filter, None).await?;
    let mut samples = Vec::new();
    for hour in hours {
        samples.extend(
            hour.samples
                .iter()
                .filter(|s| s.timestamp >= from && s.timestamp < to)
                .cloned(),
        );
        if samples.len() >= limit {
            // Repeats (replays) may hide among them: count distinct readings before stopping.
            let mut identities: Vec<_> = samples.iter().map(Sample::identity).collect();
            identities.sort_unstable();
            identities.dedup();
            if identities.len() >= limit {
                break;
            }
        }
    }
    Ok(samples)
}

/// The samples of `filter`'s series (its `from` and `to` are required) in every hour chunk of the
/// range, whole hours, one entry per hour, oldest first (an empty one for a missing chunk), each
/// rendered too if `render` is given, through `cache`: an hour decoded before is checked against
/// its chunk's length (`STRLEN`) and only what was appended since is fetched (`GETRANGE`),
/// decoded and rendered; an hour not in the cache is fetched whole (`GET`), decoded for the
/// asked series over the whole hour, and cached. One pipeline for every hour (all in the
/// charge point's slot), plus one for the rare chunk that shrank (expired) since it was cached.
pub async fn hours_matching_cached(
    pool: &Pool,
    cache: &ReadCache,
    charge_point: &str,
    filter: &SampleFilter,
    render: Option<&RenderSample>,
) -> Result<Vec<Arc<HourSamples>>, ReadError> {
    let (hours, _) =
        hours_matching_cached_beside(pool, cache, charge_point, filter, render, None).await?;
    Ok(hours)
}

/// [`hours_matching_cached`], with a `GET` of the string key `beside` (one of the charge
/// point's own keys, so in its slot) in the same pipeline: a read that needs one more small
/// value (the admin API's owner record) makes one round trip to Redis, not two. The second
/// value is `Some(value of beside)` when it was read (`Some(None)`: no such key), `None` when
/// not asked or the range covers no hour.
pub async fn hours_matching_cached_beside(
    pool: &Pool,
    cache: &ReadCache,
    charge_point: &str,
    filter: &SampleFilter,
    render: Option<&RenderSample>,
    beside: Option<&str>,
) -> Result<(Vec<Arc<HourSamples>>, Option<Option<String>>), ReadError> {
    if hours_of(filter).is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut conn = pool.get().await?;
    hours_matching_cached_on(&mut conn, cache, charge_point, filter, render, beside).await
}

/// The hours (indexes, as in `keys::raw_chunk`) whose chunks a read of `filter`'s range
/// reads, oldest first; none without both ends.
pub fn hours_of(filter: &SampleFilter) -> Vec<i64> {
    match (filter.from, filter.to) {
        (Some(from), Some(to)) => {
            keys::hours_covering(from.timestamp_millis(), to.timestamp_millis()).collect()
        }
        _ => Vec::new(),
    }
}

/// [`hours_matching_cached_beside`] over a connection the caller holds (the admin API's
/// tracked connection, `store::tracked_reads`).
pub async fn hours_matching_cached_on<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    cache: &ReadCache,
    charge_point: &str,
    filter: &SampleFilter,
    render: Option<&RenderSample>,
    beside: Option<&str>,
) -> Result<(Vec<Arc<HourSamples>>, Option<Option<String>>), ReadError> {
    let hours = hours_of(filter);
    if hours.is_empty() {
        return Ok((Vec::new(), None));
    }
    let selection = SeriesSelection {
        measurand: filter.measurand,
        connector_id: filter.connector_id,
        phase: filter.phase,
    };
    // The whole hour of the selection is what gets cached; the range is applied after.
    let hour_filter = SampleFilter {
        from: None,
        to: None,
        ..filter.clone()
    };
    let cached: Vec<Option<RawEntry>> = hours
        .iter()
        .map(|hour| cache.raw(charge_point, *hour, selection))
        .collect();
    let mut pipe = redis::pipe();
    for (hour, entry) in hours.iter().zip(&cached) {
        let key = keys::raw_chunk(charge_point, *hour);
        match entry {
            Some(entry) => {
                pipe.cmd("STRLEN").arg(&key);
                pipe.cmd("GETRANGE").arg(&key).arg(entry.len).arg(-1);
            }
            None => {
                pipe.cmd("GET").arg(&key);
            }
        }
    }
    if let Some(key) = beside {
        pipe.cmd("GET").arg(key);
    }
    let mut replies: Vec<redis::Value> = pipe.query_async(conn).await?;
    let beside = match beside {
        Some(_) => Some(match replies.pop() {
            Some(reply) => redis::from_redis_value::<Option<String>>(reply)
                .map_err(|e| ReadError::Redis(e.into()))?,
            None => None,
        }),
        None => None,
    };
    let mut replies = replies.into_iter();

    let hour_read = HourRead {
        cache,
        charge_point,
        selection,
        filter: &hour_filter,
        render,
    };
    // Per hour: the samples of the selection, or the hour to fetch again in full.
    let mut decoded: Vec<Option<Arc<HourSamples>>> = Vec::with_capacity(hours.len());
    let mut refetch = Vec::new();
    for (i, (hour, entry)) in hours.iter().zip(cached).enumerate() {
        match entry {
            Some(entry) => {
                let length = int(replies.next());
                let tail = bytes(replies.next()).unwrap_or_default();
                if length < entry.len as i64 {
                    // Expired (or lost) since it was cached: whatever is there now is new.
                    cache.invalidate_raw(charge_point, *hour, selection);
                    cache.miss();
                    refetch.push(i);
                    decoded.push(None);
                    continue;
                }
                cache.hit();
                decoded.push(Some(hour_read.grown(*hour, entry, &tail)));
            }
            None => {
                cache.miss();
                let bytes = bytes(replies.next());
                decoded.push(Some(hour_read.whole(*hour, bytes)));
            }
        }
    }
    if !refetch.is_empty() {
        let mut pipe = redis::pipe();
        for &i in &refetch {
            pipe.cmd("GET").arg(keys::raw_chunk(charge_point, hours[i]));
        }
        let chunks: Vec<Option<Vec<u8>>> = pipe.query_async(conn).await?;
        for (&i, bytes) in refetch.iter().zip(chunks) {
            decoded[i] = Some(hour_read.whole(hours[i], bytes));
        }
    }
    Ok((decoded.into_iter().flatten().collect(), beside))
}

/// One read's way of turning chunk bytes into cached hours.
struct HourRead<'a> {
    cache: &'a ReadCache,
    charge_point: &'a str,
    selection: SeriesSelection,
    filter: &'a SampleFilter,
    render: Option<&'a RenderSample>,
}

impl HourRead<'_> {
    /// A cached hour with `tail` appended to its chunk since (empty: nothing new), rendered if
    /// the read renders and the entry is not yet.
    fn grown(&self, hour: i64, entry: RawEntry, tail: &[u8]) -> Arc<HourSamples> {
        if tail.is_empty() {
            return match self.render {
                Some(render) if entry.hour.rendered.is_none() => {
                    let rendered = Arc::new(entry.hour.with_rendering(render));
                    self.put(hour, entry.len, rendered.clone());
                    rendered
                }
                _ => entry.hour,
            };
        }
        let mut samples = Vec::new();
        let error = chunk::decode_chunk_matching(tail, self.filter, &mut samples);
        let grown = Arc::new(entry.hour.with_tail(samples, self.render));
        match error {
            None => self.put(hour, entry.len + tail.len(), grown.clone()),
            Some(error) => {
                log::error!(
                    "{}: chunk {} is partly unreadable: {error}",
                    self.charge_point,
                    keys::raw_chunk(self.charge_point, hour)
                );
                self.cache
                    .invalidate_raw(self.charge_point, hour, self.selection);
            }
        }
        grown
    }

    /// Decodes one whole chunk (missing: an empty hour) and caches it when it read cleanly (a
    /// chunk with a damaged block is decoded afresh every time, so a tail is never appended
    /// after a framing error that a full decode would stop at).
    fn whole(&self, hour: i64, bytes: Option<Vec<u8>>) -> Arc<HourSamples> {
        let Some(bytes) = bytes else {
            return Arc::new(HourSamples::default());
        };
        let mut samples = Vec::new();
        let error = chunk::decode_chunk_matching(&bytes, self.filter, &mut samples);
        let decoded = Arc::new(HourSamples::from_stored(samples, self.render));
        match error {
            None => self.put(hour, bytes.len(), decoded.clone()),
            Some(error) => log::error!(
                "{}: chunk {} is partly unreadable: {error}",
                self.charge_point,
                keys::raw_chunk(self.charge_point, hour)
            ),
        }
        decoded
    }

    fn put(&self, hour: i64, len: usize, samples: Arc<HourSamples>) {
        self.cache.put_raw(
            self.charge_point,
            hour,
            self.selection,
            RawEntry { len, hour: samples },
        );
    }
}

/// An integer reply (`STRLEN`); anything else as 0, which no cached length is below.
fn int(reply: Option<redis::Value>) -> i64 {
    match reply {
        Some(redis::Value::Int(n)) => n,
        _ => 0,
    }
}

/// A bulk string reply (`GET`, `GETRANGE`); `None` for nil.
fn bytes(reply: Option<redis::Value>) -> Option<Vec<u8>> {
    match reply {
        Some(redis::Value::BulkString(bytes)) => Some(bytes),
        _ => None,
    }
}

/// The stored newest sample per (connector, measurand, phase).
pub async fn latest_samples(pool: &Pool, charge_point: &str) -> Result<Vec<Sample>, ReadError> {
    let mut conn = pool.get().await?;
    let values: HashMap<Vec<u8>, Vec<u8>> = conn.hgetall(keys::latest(charge_point)).await?;
    Ok(values
        .values()
        .filter_map(|bytes| chunk::decode_sample_value(bytes))
        .collect())
}

/// The stored record of a charge point, `None` if it was never seen.
pub async fn charge_point(
    pool: &Pool,
    charge_point: &str,
) -> Result<Option<ChargePointRecord>, ReadError> {
    let mut conn = pool.get().await?;
    let (info, connectors): (HashMap<String, String>, HashMap<String, String>) = redis::pipe()
        .hgetall(keys::info(charge_point))
        .hgetall(keys::connectors(charge_point))
        .query_async(&mut conn)
        .await?;
    if info.is_empty() && connectors.is_empty() {
        return Ok(None);
    }
    Ok(Some(ChargePointRecord { info, connectors }))
}

/// Ids of every charge point ever seen.
pub async fn charge_point_ids(pool: &Pool) -> Result<Vec<String>, ReadError> {
    let mut conn = pool.get().await?;
    let mut ids: Vec<String> = conn.smembers(keys::CHARGE_POINTS).await?;
    ids.sort();
    Ok(ids)
}

/// Stored records of several charge points in one round trip, in the order of `ids`.
pub async fn charge_points(
    pool: &Pool,
    ids: &[String],
) -> Result<Vec<ChargePointRecord>, ReadError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.get().await?;
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hgetall(keys::info(id)).hgetall(keys::connectors(id));
    }
    let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
    let mut records = Vec::with_capacity(ids.len());
    let mut iter = hashes.into_iter();
    while let (Some(info), Some(connectors)) = (iter.next(), iter.next()) {
        records.push(ChargePointRecord { info, connectors });
    }
    Ok(records)
}

/// A stored transaction, `None` if unknown.
pub async fn transaction(pool: &Pool, id: i32) -> Result<Option<TransactionRecord>, ReadError> {
    let mut conn = pool.get().await?;
    let record: TransactionRecord = conn.hgetall(keys::transaction(id)).await?;
    Ok((!record.is_empty()).then_some(record))
}

/// Up to `count` ids of the charge point's transactions, newest start first, skipping the
/// `skip` newest: the index `ocpp:{cp}:txns` lets the API page through one charge point's
/// transactions without scanning every transaction record.
pub async fn transaction_ids_newest_first(
    pool: &Pool,
    charge_point: &str,
    skip: usize,
    count: usize,
) -> Result<Vec<i32>, ReadError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut conn = pool.get().await?;
    let ids: Vec<i32> = conn
        .zrevrange(
            keys::transactions(charge_point),
            skip as isize,
            (skip + count - 1) as isize,
        )
        .await?;
    Ok(ids)
}

/// The stored records of several transactions in one round trip, in the order of `ids`
/// (`None` for an id without a record), so a listing costs one pipeline, not one read per row.
pub async fn transactions(
    pool: &Pool,
    ids: &[i32],
) -> Result<Vec<Option<TransactionRecord>>, ReadError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = pool.get().await?;
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hgetall(keys::transaction(*id));
    }
    let records: Vec<TransactionRecord> = pipe.query_async(&mut conn).await?;
    Ok(records
        .into_iter()
        .map(|record| (!record.is_empty()).then_some(record))
        .collect())
}

/// The stored statistics snapshot of a charge point (JSON), `None` if there is none (never
/// connected, or expired after `retention.stats_hours`).
pub async fn stats_document(pool: &Pool, charge_point: &str) -> Result<Option<String>, ReadError> {
    let mut conn = pool.get().await?;
    Ok(conn.get(keys::stats(charge_point)).await?)
}

/// Whether Redis answers a PING; for `/ready`.
pub async fn ping(pool: &Pool) -> Result<(), ReadError> {
    let mut conn = pool.get().await?;
    redis::cmd("PING").query_async::<()>(&mut conn).await?;
    Ok(())
}

/// What `CLUSTER INFO` says of the cluster's health, for `/ready` in cluster mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterHealth {
    /// `ok`, or `fail` while some slot has no reachable master.
    pub state: String,
    /// Slots served by a master that is not failing.
    pub slots_ok: u64,
    /// Slots whose master is suspected or known to be failing.
    pub slots_failing: u64,
    /// Nodes the answering node knows, masters and replicas.
    pub known_nodes: u64,
    /// Masters serving at least one slot.
    pub size: u64,
}

/// The cluster's health as one node sees it (redis-rs asks a random node).
pub async fn cluster_health(pool: &Pool) -> Result<ClusterHealth, ReadError> {
    let mut conn = pool.get().await?;
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await?;
    Ok(parse_cluster_info(&info))
}

fn parse_cluster_info(info: &str) -> ClusterHealth {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let number = |name: &str| field(name).parse().unwrap_or_default();
    ClusterHealth {
        state: field("cluster_state"),
        slots_ok: number("cluster_slots_ok"),
        slots_failing: number("cluster_slots_pfail") + number("cluster_slots_fail"),
        known_nodes: number("cluster_known_nodes"),
        size: number("cluster_size"),
    }
}

#[cfg(test)]
mod cluster_info_tests {
    use super::*;

    #[test]
    fn cluster_info_is_read_field_by_field() {
        let info =
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:10923\r\n\
                    cluster_slots_pfail:5461\r\ncluster_slots_fail:0\r\ncluster_known_nodes:6\r\n\
                    cluster_size:3\r\n";
        assert_eq!(
            parse_cluster_info(info),
            ClusterHealth {
                state: "fail".into(),
                slots_ok: 10923,
                slots_failing: 5461,
                known_nodes: 6,
                size: 3,
            }
        );
    }
}
