//! Trims a replay to what Redis lacks, so that a restart after a crash stores each sample once
//! and rolls it up once: the writer and the merge script leave per charge point marks (the
//! highest log sequence number whose samples they hold, see [`keys::wal_raw_marks`] and
//! [`keys::wal_rollup_mark_field`]), and records at or below a mark skip that path.
//!
//! Exact because each path takes a charge point's records in order: its buffer flushes them in
//! arrival order and the writer writes its queue in order, and a roll-up flush takes all of a
//! charge point's pending records at once. Record changes (transactions) are always replayed:
//! they are plain `HSET`/`ZADD`s, the same value written again.

use crate::redis_pool::Pool;
use deadpool_redis::redis;

use super::Replayed;
use crate::store::keys;
use crate::FastHashMap;

/// What a trim skipped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Records whose samples the raw chunks already hold.
    pub raw: usize,
    /// Records the roll-ups already hold.
    pub rollup: usize,
}

/// Reads the marks of log `wal_id` for the charge points in `replay` and drops what they
/// cover. On a Redis error nothing is trimmed (a replay then stores some samples twice, which
/// reads de-duplicate, and may count some in the roll-up statistics twice; energy is never
/// counted twice, its baseline rules it out).
pub async fn trim(
    pool: &Pool,
    wal_id: &str,
    replay: &mut [Replayed],
) -> Result<Trimmed, redis::RedisError> {
    let mut charge_points: Vec<&str> = replay
        .iter()
        .filter(|r| r.raw.is_some() || r.rollup.is_some())
        .map(|r| r.record.charge_point.as_str())
        .collect();
    charge_points.sort_unstable();
    charge_points.dedup();
    if charge_points.is_empty() {
        return Ok(Trimmed::default());
    }
    let mut conn = pool
        .get()
        .await
        .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "pool", e.to_string())))?;
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET")
        .arg(keys::wal_raw_marks(wal_id))
        .arg(&charge_points);
    let field = keys::wal_rollup_mark_field(wal_id);
    for cp in &charge_points {
        pipe.cmd("HGET").arg(keys::aggregate_state(cp)).arg(&field);
    }
    let mut answers: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
    let number = |value: &redis::Value| -> u64 {
        redis::from_redis_value::<Option<u64>>(value.clone())
            .ok()
            .flatten()
            .unwrap_or(0)
    };
    let raw_marks: Vec<u64> = match answers.first() {
        Some(redis::Value::Array(values)) => values.iter().map(number).collect(),
        _ => Vec::new(),
    };
    let rollup_marks: Vec<u64> = answers.drain(1..).map(|v| number(&v)).collect();
    let marks: FastHashMap<String, (u64, u64)> = charge_points
        .iter()
        .enumerate()
        .map(|(i, cp)| {
            let raw = raw_marks.get(i).copied().unwrap_or(0);
            let rollup = rollup_marks.get(i).copied().unwrap_or(0);
            ((*cp).to_owned(), (raw, rollup))
        })
        .collect();
    let mut trimmed = Trimmed::default();
    for replayed in replay.iter_mut() {
        let lsn = replayed.record.lsn;
        let (raw, rollup) = marks
            .get(replayed.record.charge_point.as_str())
            .copied()
            .unwrap_or((0, 0));
        if replayed.raw.is_some() && !replayed.record.samples.is_empty() && lsn <= raw {
            replayed.samples_stored = true;
            trimmed.raw += 1;
            if replayed.record.ops.is_empty() {
                replayed.raw = None;
            }
        }
        if replayed.rollup.is_some() && lsn <= rollup {
            replayed.rollup = None;
            trimmed.rollup += 1;
        }
    }
    Ok(trimmed)
}
