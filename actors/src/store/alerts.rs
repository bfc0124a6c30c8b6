//! Alerts and thresholds in Redis: the writes of the alert supervisor and the reads of the
//! admin API. Documents are the JSON of [`Alert`] and [`Thresholds`]; keys come from [`keys`].

use std::collections::HashMap;

use crate::redis_pool::Pool;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;

use super::keys;
use super::reads::ReadError;
use crate::exchange::{Alert, AlertState, Thresholds};
use crate::id::ChargePointId;

/// Stores alerts (new, updated, cleared, acknowledged) in one pipeline: the document with a TTL
/// of `retention_days` from now, the history indexes, the active set; then trims the indexes
/// to the retention.
pub async fn write_alerts(
    pool: &Pool,
    alerts: &[Alert],
    retention_days: u64,
) -> Result<(), ReadError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let ttl = retention_days.saturating_mul(86_400).max(1);
    let cutoff =
        Utc::now().timestamp_millis() - i64::try_from(ttl).unwrap_or(i64::MAX / 1000) * 1000;
    let mut pipe = redis::pipe();
    let mut charge_points = Vec::new();
    for alert in alerts {
        let json = serde_json::to_string(alert).unwrap_or_default();
        let score = alert.raised_at.timestamp_millis();
        let per_cp = keys::charge_point_alerts(alert.charge_point_id.as_str());
        pipe.cmd("SET")
            .arg(keys::alert(&alert.id))
            .arg(json)
            .arg("EX")
            .arg(ttl)
            .ignore();
        pipe.cmd("ZADD")
            .arg(keys::ALERTS)
            .arg(score)
            .arg(&alert.id)
            .ignore();
        pipe.cmd("ZADD")
            .arg(&per_cp)
            .arg(score)
            .arg(&alert.id)
            .ignore();
        match alert.state {
            AlertState::Active => pipe.cmd("SADD"),
            AlertState::Cleared => pipe.cmd("SREM"),
        }
        .arg(keys::ACTIVE_ALERTS)
        .arg(&alert.id)
        .ignore();
        if !charge_points.contains(&per_cp) {
            charge_points.push(per_cp);
        }
    }
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(keys::ALERTS)
        .arg("-inf")
        .arg(cutoff)
        .ignore();
    for key in charge_points {
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(cutoff)
            .ignore();
        pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
    }
    let mut conn = pool.get().await?;
    pipe.query_async::<()>(&mut conn).await?;
    Ok(())
}

async fn documents(pool: &Pool, ids: &[String]) -> Result<Vec<Alert>, ReadError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = ids.iter().map(|id| keys::alert(id)).collect();
    let mut conn = pool.get().await?;
    let docs: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter_map(|doc| match serde_json::from_str::<Alert>(&doc) {
            Ok(alert) => Some(alert),
            Err(error) => {
                log::error!("A stored alert is unreadable and is skipped: {error}.");
                None
            }
        })
        .collect())
}

/// Every active alert, read at start so the supervisor does not raise them again.
pub async fn active_alerts(pool: &Pool) -> Result<Vec<Alert>, ReadError> {
    let ids: Vec<String> = {
        let mut conn = pool.get().await?;
        redis::cmd("SMEMBERS")
            .arg(keys::ACTIVE_ALERTS)
            .query_async(&mut conn)
            .await?
    };
    Ok(documents(pool, &ids)
        .await?
        .into_iter()
        .filter(|a| a.state == AlertState::Active)
        .collect())
}

/// The active alerts of one charge point, read when its session starts on an instance: its
/// alert index, then each document with its own `GET` (one key per command, so each runs in
/// its slot on Redis Cluster).
pub async fn active_alerts_of(
    pool: &Pool,
    charge_point: &ChargePointId,
) -> Result<Vec<Alert>, ReadError> {
    let mut conn = pool.get().await?;
    let ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys::charge_point_alerts(charge_point.as_str()))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("GET").arg(keys::alert(id));
    }
    let docs: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter_map(|doc| serde_json::from_str::<Alert>(&doc).ok())
        .filter(|a| a.state == AlertState::Active && a.charge_point_id == *charge_point)
        .collect())
}

/// One alert by id.
pub async fn alert(pool: &Pool, id: &str) -> Result<Option<Alert>, ReadError> {
    Ok(documents(pool, &[id.to_owned()]).await?.pop())
}

/// Sets `acknowledged_at` (once) on a stored alert, keeping its TTL; `None` if there is none.
pub async fn acknowledge(
    pool: &Pool,
    id: &str,
    at: DateTime<Utc>,
) -> Result<Option<Alert>, ReadError> {
    let Some(mut alert) = alert(pool, id).await? else {
        return Ok(None);
    };
    if alert.acknowledged_at.is_none() {
        alert.acknowledged_at = Some(at);
        let json = serde_json::to_string(&alert).unwrap_or_default();
        let mut conn = pool.get().await?;
        redis::cmd("SET")
            .arg(keys::alert(id))
            .arg(json)
            .arg("XX")
            .arg("KEEPTTL")
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(Some(alert))
}

/// Filter of [`list`].
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    /// Only this charge point's alerts.
    pub charge_point: Option<ChargePointId>,
    /// Only active or only cleared alerts; `None`: both.
    pub state: Option<AlertState>,
    /// Only alerts raised at or after this.
    pub since: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: usize,
}

/// Alerts matching `query`, newest `raised_at` first.
pub async fn list(pool: &Pool, query: &AlertQuery) -> Result<Vec<Alert>, ReadError> {
    let matches = |a: &Alert| {
        query.state.is_none_or(|s| a.state == s)
            && query.since.is_none_or(|since| a.raised_at >= since)
            && query
                .charge_point
                .as_ref()
                .is_none_or(|cp| a.charge_point_id == *cp)
    };
    if query.state == Some(AlertState::Active) {
        let mut alerts: Vec<Alert> = active_alerts(pool)
            .await?
            .into_iter()
            .filter(matches)
            .collect();
        alerts.sort_by(|a, b| b.raised_at.cmp(&a.raised_at).then_with(|| b.id.cmp(&a.id)));
        alerts.truncate(query.limit);
        return Ok(alerts);
    }
    let index = match &query.charge_point {
        Some(cp) => keys::charge_point_alerts(cp.as_str()),
        None => keys::ALERTS.to_owned(),
    };
    let min = query
        .since
        .map_or_else(|| "-inf".to_owned(), |s| s.timestamp_millis().to_string());
    let page = query.limit.clamp(100, 1000);
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let ids: Vec<String> = {
            let mut conn = pool.get().await?;
            redis::cmd("ZREVRANGEBYSCORE")
                .arg(&index)
                .arg("+inf")
                .arg(&min)
                .arg("LIMIT")
                .arg(offset)
                .arg(page)
                .query_async(&mut conn)
                .await?
        };
        let fetched = ids.len();
        out.extend(documents(pool, &ids).await?.into_iter().filter(matches));
        offset += fetched;
        if out.len() >= query.limit || fetched < page {
            break;
        }
    }
    out.truncate(query.limit);
    Ok(out)
}

/// The thresholds stored by the API: the global document (if one was PUT) and the per charge
/// point overrides. Unreadable documents are logged and skipped.
pub async fn thresholds(
    pool: &Pool,
) -> Result<(Option<Thresholds>, HashMap<ChargePointId, Thresholds>), ReadError> {
    let mut conn = pool.get().await?;
    let (global, overrides): (Option<String>, HashMap<String, String>) = redis::pipe()
        .cmd("GET")
        .arg(keys::THRESHOLDS)
        .cmd("HGETALL")
        .arg(keys::THRESHOLD_OVERRIDES)
        .query_async(&mut conn)
        .await?;
    let parse = |what: &str, doc: &str| match serde_json::from_str::<Thresholds>(doc) {
        Ok(t) => Some(t),
        Err(error) => {
            log::error!("{what}: the stored thresholds are unreadable and are ignored: {error}.");
            None
        }
    };
    let global = global.and_then(|doc| parse("global", &doc));
    let overrides = overrides
        .into_iter()
        .filter_map(|(id, doc)| Some((ChargePointId::parse(&id).ok()?, parse(&id, &doc)?)))
        .collect();
    Ok((global, overrides))
}

/// Stores the global document, or with `charge_point` an override.
pub async fn save_thresholds(
    pool: &Pool,
    charge_point: Option<&ChargePointId>,
    thresholds: &Thresholds,
) -> Result<(), ReadError> {
    let json = serde_json::to_string(thresholds).unwrap_or_default();
    let mut conn = pool.get().await?;
    let mut cmd = match charge_point {
        None => redis::cmd("SET"),
        Some(_) => redis::cmd("HSET"),
    };
    match charge_point {
        None => cmd.arg(keys::THRESHOLDS),
        Some(cp) => cmd.arg(keys::THRESHOLD_OVERRIDES).arg(cp.as_str()),
    };
    cmd.arg(json).query_async::<()>(&mut conn).await?;
    Ok(())
}

/// Removes a charge point's override; it falls back to the global document.
pub async fn delete_override(pool: &Pool, charge_point: &ChargePointId) -> Result<(), ReadError> {
    let mut conn = pool.get().await?;
    redis::cmd("HDEL")
        .arg(keys::THRESHOLD_OVERRIDES)
        .arg(charge_point.as_str())
        .query_async::<()>(&mut conn)
        .await?;
    Ok(())
}
