//! `/api/v1/charge-points/{id}/aggregates`: hourly and daily roll-ups of a charge point.

use std::time::Duration as StdDuration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use chrono::DateTime;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::Value;

use super::read_timing::ReadTiming;
use super::{json, params, tracked_read, ApiError};
use actors::aggregator::{Aggregator, FlushChargePoint};
use actors::backlog::Backlog;
use actors::redis_pool::Pool;
use actors::store::aggregates::{self, StoredBucket};
use actors::store::keys;
use actors::store::read_cache::ReadCache;
use actors::store::tracked_reads::{Confirmed, Held, ReadKey, TrackedLink};
use std::sync::Arc;

/// How long a read waits for the aggregator to write its partials (read-your-writes); past it
/// (Redis away) the stored state is served as is.
const FLUSH_WAIT: StdDuration = StdDuration::from_secs(2);

/// What the route needs, registered as its own `web::Data` beside `ApiState`.
#[derive(Clone)]
pub struct AggregatesState {
    /// Redis, for reads: the worker's [`Pool::reads_sibling`] (see `ApiState::reads_pool`).
    pub pool: Pool,
    /// The aggregator, flushed before a read so it shows every sample received.
    pub aggregator: Addr<Aggregator>,
    /// Which charge points the aggregator holds something of: a read of any other skips the
    /// flush (the stream's [`actors::stream::SampleStream::rollups`]).
    pub backlog: Arc<Backlog>,
    /// Closed buckets, decoded and rendered, kept between reads (checked against the charge
    /// point's roll-up version at every use); shared with the meter-values read.
    pub cache: Arc<ReadCache>,
    /// This worker's tracked connection and the marks of reads Redis vouches for (shared with
    /// `ApiState::tracked`).
    pub tracked: Arc<TrackedLink>,
}

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/charge-points/{id}/aggregates",
        web::get().to(aggregates_of),
    );
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(aggregates_of))]
pub(super) struct Doc;

/// Query of `/aggregates`; all optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AggregatesQuery {
    period: Option<String>,
    measurand: Option<String>,
    connector: Option<u32>,
    phase: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

#[utoipa::path(get, path = "/charge-points/{id}/aggregates", tag = "charge points", params(("id" = String, Path, description = "Charge point id"), AggregatesQuery), responses((status = 200, description = "`{charge_point_id, period, from, to, buckets}`: hourly or daily roll-ups (see the README)", body = serde_json::Value), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn aggregates_of(
    api: web::Data<super::ApiState>,
    state: web::Data<AggregatesState>,
    path: web::Path<String>,
    query: web::Query<AggregatesQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut timing = ReadTiming::start();
    let id = params::charge_point_id(&path)?;
    let period = params::period(query.period.as_deref())?;
    let measurand = params::measurand(query.measurand.as_deref())?;
    let phase = params::phase(query.phase.as_deref())?;
    let (from, to) = params::rollup_range(period, query.from.as_deref(), query.to.as_deref())?;

    let starts = period.starts_in(from, to);
    let key = ReadKey::Buckets {
        period,
        first_start: starts.first().copied().unwrap_or_default(),
        last_start: starts.last().copied().unwrap_or_default(),
    };
    let owner_key = keys::owner(id.as_str());
    // A read Redis confirmed and nothing changed since is answered from memory; otherwise the
    // mark is opened before the aggregator's count is looked at.
    let (entries, owner) = match tracked_read::begin(&state.tracked, &state.cache, id.as_str(), key)
    {
        tracked_read::Step::Answered(confirmed) => {
            timing.mark("flush");
            match confirmed.held {
                Held::Buckets(entries) => (entries, confirmed.beside),
                Held::Hours(_) => unreachable!("a buckets key holds buckets"),
            }
        }
        tracked_read::Step::Ask(opened) => {
            // Read-your-writes: let the aggregator write what it holds of this charge point,
            // then read Redis. Flushing rather than merging its partials avoids counting a
            // flush twice that lands between the two; flushing only this charge point keeps
            // the read from waiting on one script call per charge point of the fleet. When it
            // holds nothing of it (counted before every batch is sent to it), the round trip
            // through its busy mailbox is skipped.
            let clear = state.backlog.is_clear(&id);
            if !clear {
                let flush = state.aggregator.send(FlushChargePoint(id.clone()));
                let _ = tokio::time::timeout(FLUSH_WAIT, flush).await;
            }
            timing.mark("flush");
            // The owner record rides in the same pipeline (one round trip less, see
            // meter-values).
            tracked_read::redis_step(
                &state.tracked,
                opened,
                clear,
                async |conn| {
                    aggregates::read_buckets_cached_on(
                        conn,
                        &state.cache,
                        id.as_str(),
                        period,
                        from,
                        to,
                        &render_bucket,
                        Some(&owner_key),
                    )
                    .await
                },
                async || {
                    aggregates::read_buckets_cached_beside(
                        &state.pool,
                        &state.cache,
                        id.as_str(),
                        period,
                        from,
                        to,
                        &render_bucket,
                        Some(&owner_key),
                    )
                    .await
                },
                |(entries, owner)| Confirmed {
                    held: Held::Buckets(Arc::from(entries.as_slice())),
                    beside: owner.clone(),
                },
            )
            .await
            .map(|(entries, owner)| (Arc::<[_]>::from(entries), owner))?
        }
    };
    timing.mark("redis");
    let keep = |b: &StoredBucket| {
        measurand.is_none_or(|m| b.series.measurand == m)
            && query.connector.is_none_or(|c| b.series.connector_id == c)
            && phase.is_none_or(|p| b.series.phase == Some(p))
    };
    let buckets = entries
        .iter()
        .flat_map(|entry| entry.series.iter())
        .filter(|(bucket, _)| keep(bucket))
        .map(|(_, json)| &**json);
    let (instance, buffered_elsewhere_secs) =
        super::holder_from(&api, &id, api.lag.rollup_secs, owner).await;
    timing.mark("holder");
    let size_hint = 256
        + entries
            .iter()
            .map(|e| e.series.iter().map(|(_, j)| j.len() + 1).sum::<usize>())
            .sum::<usize>();
    let rest = AggregatesRest {
        buffered_elsewhere_secs,
        charge_point_id: id.as_str(),
        from: json::time(from),
        instance,
        period: period.as_str(),
        to: json::time(to),
    };
    match render_body(buckets, &rest, size_hint) {
        Ok(body) => {
            let response = HttpResponse::Ok()
                .content_type(actix_web::http::header::ContentType::json())
                .body(body);
            timing.mark("body");
            timing.finish(id.as_str(), "aggregates");
            Ok(response)
        }
        Err(e) => {
            log::error!("{id}: cannot render an aggregates response: {e}");
            Ok(HttpResponse::InternalServerError().finish())
        }
    }
}

/// The body of `/aggregates`: `{"buckets":[...],` followed by the other fields. Buckets come
/// rendered (cached with the decoded bucket: serialising 7,200 buckets was a third of a
/// 30-day read, issue 5), so they are copied in; the fields are in the sorted order a
/// `serde_json::Value` map wrote them, so the bytes did not change (a unit test holds both
/// renderings together).
fn render_body<'a>(
    buckets: impl Iterator<Item = &'a str>,
    rest: &AggregatesRest<'_>,
    size_hint: usize,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut body = Vec::with_capacity(size_hint);
    body.extend_from_slice(b"{\"buckets\":[");
    for (i, bucket) in buckets.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(bucket.as_bytes());
    }
    body.extend_from_slice(b"],");
    let rest = serde_json::to_vec(rest)?;
    // `rest` is an object: drop its opening brace, keep the closing one.
    body.extend_from_slice(rest.get(1..).unwrap_or_default());
    Ok(body)
}

/// One bucket as the API shows it, rendered once per bucket read (and cached with it).
fn render_bucket(bucket: &StoredBucket) -> String {
    // Serialising plain strings and numbers into a `String` cannot fail.
    serde_json::to_string(&BucketJson(bucket)).unwrap_or_else(|_| "null".into())
}

/// The fields of the body after `buckets`, in their sorted order.
#[derive(serde::Serialize)]
struct AggregatesRest<'a> {
    buffered_elsewhere_secs: Option<u64>,
    charge_point_id: &'a str,
    from: String,
    instance: Option<String>,
    period: &'static str,
    to: String,
}

/// One bucket as the API shows it (see the README's aggregates section).
struct BucketJson<'a>(&'a StoredBucket);

impl Serialize for BucketJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let b = self.0;
        let r = &b.rollup;
        // As `json!(x)`: a non-finite number becomes null.
        let num = |v: Option<f64>| v.map(Value::from);
        let at = |v: Option<(i64, f64)>| {
            v.and_then(|(t, _)| DateTime::from_timestamp_millis(t))
                .map(json::time)
        };
        let energy = b.series.measurand.is_energy_register();
        let mut map = serializer.serialize_map(Some(14 + usize::from(energy)))?;
        map.serialize_entry("avg", &num(r.avg()))?;
        map.serialize_entry("connector_id", &b.series.connector_id)?;
        map.serialize_entry("count", &r.count)?;
        if energy {
            map.serialize_entry("energy_wh", &Value::from(r.energy))?;
        }
        map.serialize_entry("first", &num(r.first.map(|f| f.1)))?;
        map.serialize_entry("first_at", &at(r.first))?;
        map.serialize_entry("last", &num(r.last.map(|l| l.1)))?;
        map.serialize_entry("last_at", &at(r.last))?;
        map.serialize_entry("max", &num(r.max))?;
        map.serialize_entry("measurand", b.series.measurand.as_str())?;
        map.serialize_entry("min", &num(r.min))?;
        map.serialize_entry("phase", &b.series.phase.map(|p| p.as_str()))?;
        map.serialize_entry("start", &json::time(b.start))?;
        map.serialize_entry("sum", &Value::from(r.sum))?;
        map.serialize_entry("unit", aggregates::unit_of(&b.series).as_str())?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::sample::{Measurand, Phase};
    use actors::store::aggregates::{Rollup, SeriesKey};
    use serde_json::json;

    /// The `Value` rendering the direct one replaced, kept as the reference.
    fn bucket_value(b: &StoredBucket) -> Value {
        let r = &b.rollup;
        let mut v = json!({
            "start": json::time(b.start),
            "measurand": b.series.measurand.as_str(),
            "connector_id": b.series.connector_id,
            "phase": b.series.phase.map(|p| p.as_str()),
            "unit": aggregates::unit_of(&b.series).as_str(),
            "count": r.count,
            "min": r.min,
            "max": r.max,
            "avg": r.avg(),
            "sum": r.sum,
            "first": r.first.map(|f| f.1),
            "first_at": r.first.and_then(|f| DateTime::from_timestamp_millis(f.0)).map(json::time),
            "last": r.last.map(|l| l.1),
            "last_at": r.last.and_then(|l| DateTime::from_timestamp_millis(l.0)).map(json::time),
        });
        if b.series.measurand.is_energy_register() {
            v["energy_wh"] = json!(r.energy);
        }
        v
    }

    #[test]
    fn direct_rendering_matches_the_value_rendering_byte_for_byte() {
        let start = DateTime::from_timestamp_millis(1_764_000_000_000).unwrap();
        let mut full = Rollup::default();
        full.add(1_764_000_001_000, 230.5);
        full.add(1_764_000_002_500, 229.25);
        full.energy = 12.75;
        let empty = Rollup {
            energy: 3.5,
            ..Rollup::default()
        };
        let nan = Rollup {
            count: 1,
            sum: f64::NAN,
            ..Rollup::default()
        };
        let series = |measurand, phase, unit: &str| SeriesKey {
            connector_id: 1,
            measurand,
            phase,
            unit: unit.into(),
        };
        let buckets = [
            StoredBucket {
                start,
                series: series(Measurand::Voltage, Some(Phase::L1N), "V"),
                rollup: full.clone(),
            },
            StoredBucket {
                start,
                series: series(Measurand::EnergyActiveImportRegister, None, "Wh"),
                rollup: full,
            },
            StoredBucket {
                start,
                series: series(Measurand::EnergyActiveImportRegister, None, "Wh"),
                rollup: empty,
            },
            StoredBucket {
                start,
                series: series(Measurand::Temperature, None, "furlong:s"),
                rollup: nan,
            },
        ];
        let rendered: Vec<String> = buckets.iter().map(render_bucket).collect();
        let rest = AggregatesRest {
            buffered_elsewhere_secs: Some(30),
            charge_point_id: "CP-1",
            from: json::time(start),
            instance: Some("b:8080".into()),
            period: "hour",
            to: json::time(start),
        };
        let direct = render_body(rendered.iter().map(String::as_str), &rest, 0).unwrap();
        let direct = String::from_utf8(direct).unwrap();
        let none = render_body(std::iter::empty(), &rest, 0).unwrap();
        let none_reference = serde_json::to_string(&json!({
            "buffered_elsewhere_secs": 30,
            "instance": "b:8080",
            "charge_point_id": "CP-1",
            "period": "hour",
            "from": json::time(start),
            "to": json::time(start),
            "buckets": [],
        }))
        .unwrap();
        assert_eq!(String::from_utf8(none).unwrap(), none_reference);
        let reference = serde_json::to_string(&json!({
            "buffered_elsewhere_secs": 30,
            "instance": "b:8080",
            "charge_point_id": "CP-1",
            "period": "hour",
            "from": json::time(start),
            "to": json::time(start),
            "buckets": buckets.iter().map(bucket_value).collect::<Vec<_>>(),
        }))
        .unwrap();
        assert_eq!(direct, reference);
        assert!(direct.contains("\"energy_wh\":3.5"), "{direct}");
    }
}
