//! `/api/v1/charge-points/{id}/aggregates`: hourly and daily roll-ups of a charge point.

use std::time::Duration as StdDuration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::Value;

use super::{json, params, ApiError};
use actors::aggregator::{Aggregator, FlushChargePoint};
use actors::redis_pool::Pool;
use actors::store::aggregates::{self, Period, StoredBucket};

/// Longest range of one query, per period: a month of hours, a bit more than a year of days.
const MAX_HOURLY_RANGE_DAYS: i64 = 31;
const MAX_DAILY_RANGE_DAYS: i64 = 400;
/// How long a read waits for the aggregator to write its partials (read-your-writes); past it
/// (Redis away) the stored state is served as is.
const FLUSH_WAIT: StdDuration = StdDuration::from_secs(2);

/// What the route needs, registered as its own `web::Data` beside `ApiState`.
#[derive(Clone)]
pub struct AggregatesState {
    /// Redis, for reads.
    pub pool: Pool,
    /// The aggregator, flushed before a read so it shows every sample received.
    pub aggregator: Addr<Aggregator>,
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
    let id = params::charge_point_id(&path)?;
    let period = match query.period.as_deref() {
        None => Period::Hour,
        Some(p) => Period::parse(p).ok_or_else(|| {
            ApiError::BadRequest(format!("period {p:?} must be \"hour\" or \"day\""))
        })?,
    };
    let measurand = params::measurand(query.measurand.as_deref())?;
    let phase = params::phase(query.phase.as_deref())?;
    let (default_span, max_days) = match period {
        Period::Hour => (Duration::hours(24), MAX_HOURLY_RANGE_DAYS),
        Period::Day => (Duration::days(30), MAX_DAILY_RANGE_DAYS),
    };
    let to = match &query.to {
        Some(t) => params::time("to", t)?,
        None => Utc::now(),
    };
    let from = match &query.from {
        Some(f) => params::time("from", f)?,
        None => to - default_span,
    };
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    if to - from > Duration::days(max_days) {
        return Err(ApiError::BadRequest(format!(
            "from..to may span at most {max_days} days for period {}",
            period.as_str()
        )));
    }

    // Read-your-writes: let the aggregator write what it holds of this charge point, then read
    // Redis. Flushing rather than merging its partials avoids counting a flush twice that lands
    // between the two; flushing only this charge point keeps the read from waiting on one
    // script call per charge point of the fleet.
    let flush = state.aggregator.send(FlushChargePoint(id.clone()));
    let _ = tokio::time::timeout(FLUSH_WAIT, flush).await;
    let mut buckets = aggregates::read_buckets(&state.pool, id.as_str(), period, from, to).await?;
    buckets.retain(|b| {
        measurand.is_none_or(|m| b.series.measurand == m)
            && query.connector.is_none_or(|c| b.series.connector_id == c)
            && phase.is_none_or(|p| b.series.phase == Some(p))
    });
    let (instance, buffered_elsewhere_secs) = super::holder(&api, &id, api.lag.rollup_secs).await;
    // ~270 bytes per bucket as rendered.
    let size_hint = 256 + 300 * buckets.len();
    let body = AggregatesBody {
        buckets: BucketsJson(&buckets),
        buffered_elsewhere_secs,
        charge_point_id: id.as_str(),
        from: json::time(from),
        instance,
        period: period.as_str(),
        to: json::time(to),
    };
    Ok(json::ok_sized(&body, size_hint))
}

/// The body of `/aggregates`, serialised straight into the response: a 30-day hourly read
/// renders ~7,200 buckets, and building a `serde_json::Value` map per bucket took most of the
/// read's time (issue 5, target 5). Fields in the sorted order a `Value` map wrote them, so
/// the bytes did not change; a unit test holds both renderings together.
#[derive(serde::Serialize)]
struct AggregatesBody<'a> {
    buckets: BucketsJson<'a>,
    buffered_elsewhere_secs: Option<u64>,
    charge_point_id: &'a str,
    from: String,
    instance: Option<String>,
    period: &'static str,
    to: String,
}

/// The buckets of a read, serialised one by one.
struct BucketsJson<'a>(&'a [StoredBucket]);

impl Serialize for BucketsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(BucketJson))
    }
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
        let buckets = vec![
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
        let direct = serde_json::to_string(&AggregatesBody {
            buckets: BucketsJson(&buckets),
            buffered_elsewhere_secs: Some(30),
            charge_point_id: "CP-1",
            from: json::time(start),
            instance: Some("b:8080".into()),
            period: "hour",
            to: json::time(start),
        })
        .unwrap();
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
