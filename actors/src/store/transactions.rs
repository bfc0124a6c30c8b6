//! The fleet's transactions as listings see them: the start-time indexes (fleet-wide, per
//! charge point, per idTag), paging through them by `(start, id)`, the one-off copy of older
//! deployments' per-charge-point indexes into the fleet-wide ones, and what a transaction's own
//! raw samples say of it (energy register readings, highest power).
//!
//! Reads, like [`super::reads`]; the one write is [`cache_max_power`], a derived field of a
//! stopped transaction's record (its samples no longer change), and the idempotent backfill.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use deadpool_redis::redis;

use crate::redis_pool::Pool;
use crate::sample::{Location, Measurand, Sample, SampleValue, Unit};
use crate::store::chunk::SampleFilter;
use crate::store::keys;
use crate::store::read_cache::ReadCache;
use crate::store::reads::{self, ReadError, TransactionRecord};

/// Field of a transaction's record caching its highest `Power.Active.Import` (W) once it has
/// stopped; empty text when the transaction had no power sample.
pub const MAX_POWER_FIELD: &str = "max_power_w";

/// How many ids one backfill `ZADD` carries, so a charge point with years of transactions does
/// not build one huge command.
const BACKFILL_BATCH: usize = 500;

/// A place in a start-time index: the transaction's start (unix ms) and id.
///
/// Ordered as Redis orders a sorted set: by score, then by member as text (so on equal start
/// times `10` comes before `9`). Listings page in this order, so a cursor naming the last
/// position seen is exact however many transactions share its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Start time, unix ms (the score).
    pub start_ms: i64,
    /// Transaction id (the member).
    pub id: i32,
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        self.start_ms
            .cmp(&other.start_ms)
            .then_with(|| self.id.to_string().cmp(&other.id.to_string()))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Makes sure the fleet-wide and per-idTag indexes hold the transactions started before this
/// version wrote them: when [`keys::FLEET_TRANSACTIONS_BACKFILLED`] is absent, copies every
/// charge point's `ocpp:{cp}:txns` into them and sets it. Costs one `EXISTS` per listing
/// afterwards. Safe to run twice or from two instances at once (`ZADD` of the same score is a
/// no-op), and a transaction the writer indexes meanwhile is indexed either way.
pub async fn ensure_fleet_index(pool: &Pool) -> Result<(), ReadError> {
    let mut conn = pool.get().await?;
    let done: bool = redis::cmd("EXISTS")
        .arg(keys::FLEET_TRANSACTIONS_BACKFILLED)
        .query_async(&mut conn)
        .await?;
    drop(conn);
    if done {
        return Ok(());
    }
    let copied = backfill(pool).await?;
    log::info!("Copied {copied} transactions into the fleet-wide and idTag indexes.");
    Ok(())
}

/// Copies every charge point's transaction index into the fleet-wide and per-idTag indexes and
/// marks the copy done; returns how many transactions it copied.
async fn backfill(pool: &Pool) -> Result<usize, ReadError> {
    let charge_points = reads::charge_point_ids(pool).await?;
    let mut copied = 0;
    for cp in charge_points {
        let mut conn = pool.get().await?;
        let entries: Vec<(i32, f64)> = redis::cmd("ZRANGE")
            .arg(keys::transactions(&cp))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        drop(conn);
        for batch in entries.chunks(BACKFILL_BATCH) {
            let ids: Vec<i32> = batch.iter().map(|(id, _)| *id).collect();
            let records = reads::transactions(pool, &ids).await?;
            let mut pipe = redis::pipe();
            let mut fleet = redis::cmd("ZADD");
            fleet.arg(keys::FLEET_TRANSACTIONS);
            for ((id, score), record) in batch.iter().zip(&records) {
                fleet.arg(*score as i64).arg(*id);
                if let Some(tag) = record
                    .as_ref()
                    .and_then(|r| r.get("id_tag"))
                    .filter(|tag| !tag.is_empty())
                {
                    pipe.cmd("ZADD")
                        .arg(keys::id_tag_transactions(tag))
                        .arg(*score as i64)
                        .arg(*id)
                        .ignore();
                }
            }
            pipe.add_command(fleet).ignore();
            let mut conn = pool.get().await?;
            pipe.query_async::<()>(&mut conn).await?;
            copied += batch.len();
        }
    }
    let mut conn = pool.get().await?;
    redis::cmd("SET")
        .arg(keys::FLEET_TRANSACTIONS_BACKFILLED)
        .arg(Utc::now().timestamp_millis())
        .query_async::<()>(&mut conn)
        .await?;
    Ok(copied)
}

/// Up to `count` positions of the index `key` whose start is in `[from_ms, to_ms)` and that
/// come strictly after `after` (the cursor), in index order. Positions sharing the cursor's
/// start time are read and skipped, so the page starts exactly after it even when a
/// transaction was indexed meanwhile.
pub async fn page(
    pool: &Pool,
    key: &str,
    from_ms: i64,
    to_ms: i64,
    after: Option<Position>,
    count: usize,
) -> Result<Vec<Position>, ReadError> {
    let mut out = Vec::new();
    if count == 0 {
        return Ok(out);
    }
    let min = match after {
        Some(after) => after.start_ms.max(from_ms),
        None => from_ms,
    };
    let mut offset = 0;
    let mut conn = pool.get().await?;
    loop {
        // A few more than needed covers the ones skipped at the cursor's start time; a large
        // `count` is read in slices.
        let batch = (count - out.len()).min(10_000) + 16;
        let entries: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(key)
            .arg(min)
            .arg(format!("({to_ms}"))
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(offset)
            .arg(batch)
            .query_async(&mut conn)
            .await?;
        let fetched = entries.len();
        for (member, score) in entries {
            // An index member that is not an id was not written by ocpp-meter: skip it.
            let Ok(id) = member.parse::<i32>() else {
                continue;
            };
            let position = Position {
                start_ms: score as i64,
                id,
            };
            if after.is_some_and(|after| position <= after) {
                continue;
            }
            out.push(position);
            if out.len() == count {
                return Ok(out);
            }
        }
        if fetched < batch {
            return Ok(out);
        }
        offset += fetched;
    }
}

/// [`page`] over several indexes merged (a group's charge points): the first `count`
/// positions of their union in index order.
pub async fn page_merged(
    pool: &Pool,
    index_keys: &[String],
    from_ms: i64,
    to_ms: i64,
    after: Option<Position>,
    count: usize,
) -> Result<Vec<Position>, ReadError> {
    let pages = futures_util::future::try_join_all(
        index_keys
            .iter()
            .map(|key| page(pool, key, from_ms, to_ms, after, count)),
    )
    .await?;
    let mut merged: Vec<Position> = pages.into_iter().flatten().collect();
    merged.sort_unstable();
    merged.dedup();
    merged.truncate(count);
    Ok(merged)
}

/// Transaction ids of one idTag started before `to_ms` (every one the index holds), oldest
/// first: the candidates of an energy-per-idTag query, whose caller drops those that ended
/// before its range.
pub async fn id_tag_started_before(
    pool: &Pool,
    id_tag: &str,
    to_ms: i64,
) -> Result<Vec<Position>, ReadError> {
    page(
        pool,
        &keys::id_tag_transactions(id_tag),
        i64::MIN / 2,
        to_ms,
        None,
        usize::MAX / 2,
    )
    .await
}

/// The raw samples of the charge point on `connector` in every UTC hour from `from` to `to`
/// (whole hours: the chunks are read whole anyway, and readings stamped a little outside a
/// transaction are still found), through the read cache.
pub async fn connector_samples(
    pool: &Pool,
    cache: &ReadCache,
    charge_point: &str,
    connector: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Sample>, ReadError> {
    let from_ms = from.timestamp_millis().div_euclid(keys::HOUR_MS) * keys::HOUR_MS;
    let to_ms = (to.timestamp_millis().div_euclid(keys::HOUR_MS) + 1) * keys::HOUR_MS;
    let (Some(from), Some(to)) = (
        DateTime::from_timestamp_millis(from_ms),
        DateTime::from_timestamp_millis(to_ms),
    ) else {
        return Ok(Vec::new());
    };
    let filter = SampleFilter {
        connector_id: Some(connector),
        from: Some(from),
        to: Some(to),
        ..SampleFilter::default()
    };
    reads::samples_matching_cached(pool, cache, charge_point, &filter, usize::MAX).await
}

/// What one transaction's own samples say: those carrying its id, on its connector, without a
/// phase, measured at the outlet (the connector's meter), in the normalised unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransactionReadings {
    /// `Energy.Active.Import.Register` readings `(t_ms, Wh)`, oldest first, each reading once
    /// (repeats of the same reading, as a replayed MeterValues stores them, dropped).
    pub registers: Vec<(i64, f64)>,
    /// Highest `Power.Active.Import` reading (W), `None` without any.
    pub max_power_w: Option<f64>,
}

impl TransactionReadings {
    /// The newest register reading, which is where a running transaction's energy stands.
    pub fn latest_register(&self) -> Option<f64> {
        self.registers.last().map(|(_, v)| *v)
    }
}

/// Picks transaction `id`'s readings out of `samples` (see [`TransactionReadings`]); samples
/// may come in any order and repeat. Two readings of one series with the same timestamp count
/// as one, the one first in [`Sample::identity`] order.
pub fn transaction_readings(samples: &[Sample], id: i32, connector: u32) -> TransactionReadings {
    let mut own: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.transaction_id == Some(id)
                && s.connector_id == connector
                && s.phase.is_none()
                && s.location == Location::Outlet
                && matches!(s.value, SampleValue::Number(v) if v.is_finite())
        })
        .collect();
    own.sort_by_key(|s| s.identity());
    own.dedup_by_key(|s| s.identity());
    let mut readings = TransactionReadings::default();
    for s in own {
        let Some(value) = s.number() else { continue };
        let t = s.timestamp.timestamp_millis();
        match s.measurand {
            Measurand::EnergyActiveImportRegister
                if s.unit == Unit::Wh
                    && readings.registers.last().is_none_or(|(last, _)| *last < t) =>
            {
                readings.registers.push((t, value));
            }
            Measurand::PowerActiveImport if s.unit == Unit::W => {
                readings.max_power_w = Some(readings.max_power_w.map_or(value, |m| m.max(value)));
            }
            _ => {}
        }
    }
    readings
}

/// The cached highest power of a stopped transaction: `Some(Some(w))`, `Some(None)` (it had no
/// power sample), or `None` when not cached yet.
pub fn cached_max_power(record: &TransactionRecord) -> Option<Option<f64>> {
    let text = record.get(MAX_POWER_FIELD)?;
    if text.is_empty() {
        return Some(None);
    }
    text.parse::<f64>().ok().map(Some)
}

/// Stores a stopped transaction's highest power in its record, so later listings need not read
/// its samples again: a stopped transaction's samples do not change once none of them waits
/// in a buffer (the caller checks). Only sets the field while the record exists (`HSETEX` is
/// not needed: the record has no TTL).
pub async fn cache_max_power(
    pool: &Pool,
    id: i32,
    max_power_w: Option<f64>,
) -> Result<(), ReadError> {
    let value = max_power_w.map(|w| format!("{w:?}")).unwrap_or_default();
    let mut conn = pool.get().await?;
    let exists: bool = redis::cmd("EXISTS")
        .arg(keys::transaction(id))
        .query_async(&mut conn)
        .await?;
    if exists {
        redis::cmd("HSET")
            .arg(keys::transaction(id))
            .arg(MAX_POWER_FIELD)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

/// A transaction record's start time in unix ms, `None` when missing or unreadable.
pub fn start_ms(record: &TransactionRecord) -> Option<i64> {
    time_ms(record, "start_time")
}

/// A transaction record's stop time in unix ms, `None` while running.
pub fn stop_ms(record: &TransactionRecord) -> Option<i64> {
    time_ms(record, "stop_time")
}

fn time_ms(record: &TransactionRecord, field: &str) -> Option<i64> {
    let text = record.get(field)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Phase, ReadingContext};

    fn sample(t: i64, measurand: Measurand, value: f64, txn: Option<i32>) -> Sample {
        Sample {
            timestamp: DateTime::from_timestamp_millis(t).unwrap_or_default(),
            connector_id: 1,
            transaction_id: txn,
            measurand,
            phase: None,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: if measurand == Measurand::PowerActiveImport {
                Unit::W
            } else {
                Unit::Wh
            },
            value: SampleValue::Number(value),
        }
    }

    #[test]
    fn positions_order_like_redis() {
        let p = |start_ms, id| Position { start_ms, id };
        assert!(p(1, 9) < p(2, 1));
        // Equal scores: members compare as text.
        assert!(p(5, 10) < p(5, 9));
        assert!(p(5, 9) > p(5, 10));
        assert_eq!(p(5, 9).cmp(&p(5, 9)), Ordering::Equal);
    }

    #[test]
    fn readings_are_the_transactions_own_deduplicated_and_sorted() {
        let e = Measurand::EnergyActiveImportRegister;
        let w = Measurand::PowerActiveImport;
        let mut samples = vec![
            sample(3_000, e, 30.0, Some(7)),
            sample(1_000, e, 10.0, Some(7)),
            sample(3_000, e, 30.0, Some(7)), // replay
            sample(2_000, e, 99.0, Some(8)), // another transaction
            sample(2_000, e, 55.0, None),
            sample(2_500, w, 7_000.0, Some(7)),
            sample(2_600, w, 7_400.0, Some(7)),
        ];
        let mut phased = sample(2_700, w, 9_000.0, Some(7));
        phased.phase = Some(Phase::L1);
        samples.push(phased);
        let mut other_connector = sample(2_800, e, 12.0, Some(7));
        other_connector.connector_id = 2;
        samples.push(other_connector);
        let readings = transaction_readings(&samples, 7, 1);
        assert_eq!(readings.registers, vec![(1_000, 10.0), (3_000, 30.0)]);
        assert_eq!(readings.max_power_w, Some(7_400.0));
        assert_eq!(readings.latest_register(), Some(30.0));
        assert_eq!(
            transaction_readings(&samples, 9, 1),
            TransactionReadings::default()
        );
    }

    #[test]
    fn cached_power_reads_back() {
        let mut record = TransactionRecord::new();
        assert_eq!(cached_max_power(&record), None);
        record.insert(MAX_POWER_FIELD.into(), String::new());
        assert_eq!(cached_max_power(&record), Some(None));
        record.insert(MAX_POWER_FIELD.into(), "7400.5".into());
        assert_eq!(cached_max_power(&record), Some(Some(7400.5)));
    }
}
