//! `/api/v1/fleet/energy` and `/api/v1/fleet/top`: questions about the whole fleet or one group
//! (a site), answered from the fleet-level roll-up (`store::fleet_rollup`) rather than from
//! every charge point's buckets.
//!
//! The fleet roll-up is written with the charge points' roll-ups, so it lags the live samples
//! by up to `buffer.rollup_interval_secs` (the answer says so in `lag_secs`); these routes do
//! not flush the aggregator first, as the per-charge-point aggregates do, because one flush of a
//! 20,000-charge-point fleet per query would cost more than the query.

use actix_web::{web, HttpResponse};
use chrono::{Duration, DurationRound};
use serde::Deserialize;
use serde_json::json;

use super::{groups, json, params, ApiError, ApiState};
use actors::store::fleet_rollup;

/// Longest range of a top query.
const MAX_TOP_RANGE_DAYS: i64 = 400;
/// Default and largest `limit` of a top query.
const DEFAULT_TOP_LIMIT: usize = 10;
const MAX_TOP_LIMIT: usize = 1000;

/// Registers the fleet routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/fleet/energy", web::get().to(energy))
        .route("/fleet/top", web::get().to(top));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(energy, top))]
pub(super) struct Doc;

/// Query of `/fleet/energy`; all optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EnergyQuery {
    /// `hour` (default) or `day`.
    period: Option<String>,
    /// Start, RFC 3339, inclusive: buckets starting at or after it (default: `to` minus 24 h
    /// for hours, 30 days for days). At most 31 days of hours or 400 days of days.
    from: Option<String>,
    /// End, RFC 3339, exclusive (default: now).
    to: Option<String>,
    /// A group id: only its charge points (404 if unknown).
    group: Option<String>,
}

/// Query of `/fleet/top`; all optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TopQuery {
    /// `energy_wh` (default, summed), `max_power_w` (largest) or `samples` (summed).
    metric: Option<String>,
    /// Start, RFC 3339, rounded down to the hour (default: `to` minus 24 h).
    from: Option<String>,
    /// End, RFC 3339, exclusive, rounded up to the hour (default: now). At most 400 days.
    to: Option<String>,
    /// A group id: only its charge points (404 if unknown).
    group: Option<String>,
    /// How many: 1 to 1000, default 10.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

#[utoipa::path(get, path = "/fleet/energy", tag = "fleet", params(EnergyQuery), responses((status = 200, description = "`{period, from, to, buckets: [{start, energy_wh, charge_points}]}`: every bucket starting in `[from, to)`, the sum of the charge points' roll-up `energy_wh` (import register, see the README) and how many charge points have roll-up data in it; fleet-wide or for `group`", body = super::schemas::FleetEnergy), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "Unknown group", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn energy(
    state: web::Data<ApiState>,
    query: web::Query<EnergyQuery>,
) -> Result<HttpResponse, ApiError> {
    let period = params::period(query.period.as_deref())?;
    let (from, to) = params::rollup_range(period, query.from.as_deref(), query.to.as_deref())?;
    let members = groups::filter(&state, query.group.as_deref()).await?;
    let buckets = fleet_rollup::energy(&state.pool, period, from, to, members.as_deref()).await?;
    let buckets: Vec<_> = buckets
        .iter()
        .map(|b| {
            json!({
                "start": json::time(b.start),
                "energy_wh": b.energy_wh,
                "charge_points": b.charge_points,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "period": period.as_str(),
        "from": json::time(from),
        "to": json::time(to),
        "group": query.group,
        "lag_secs": state.lag.rollup_secs,
        "buckets": buckets,
    })))
}

/// What `/fleet/top` ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    EnergyWh,
    MaxPowerW,
    Samples,
}

#[utoipa::path(get, path = "/fleet/top", tag = "fleet", params(TopQuery), responses((status = 200, description = "`{metric, from, to, items: [{charge_point_id, value}]}`: the charge points with the largest `metric` over the whole hours of `[from, to)`, largest first (ties by id); charge points without the metric in the range are left out", body = super::schemas::FleetTop), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "Unknown group", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn top(
    state: web::Data<ApiState>,
    query: web::Query<TopQuery>,
) -> Result<HttpResponse, ApiError> {
    let metric = match query.metric.as_deref().unwrap_or("energy_wh") {
        "energy_wh" => Metric::EnergyWh,
        "max_power_w" => Metric::MaxPowerW,
        "samples" => Metric::Samples,
        other => {
            return Err(ApiError::BadRequest(format!(
                "metric must be energy_wh, max_power_w or samples, not {other:?}"
            )))
        }
    };
    let limit = params::limit(query.limit.as_deref(), DEFAULT_TOP_LIMIT, MAX_TOP_LIMIT)?;
    let (from, to) = params::range(
        query.from.as_deref(),
        query.to.as_deref(),
        Duration::hours(24),
        MAX_TOP_RANGE_DAYS,
        "fleet/top",
    )?;
    // Whole hours: the roll-up has nothing finer.
    let hour = Duration::hours(1);
    let from = from.duration_trunc(hour).unwrap_or(from);
    let to = match to.duration_trunc(hour) {
        Ok(t) if t < to => t + hour,
        Ok(t) => t,
        Err(_) => to,
    };
    let members = groups::filter(&state, query.group.as_deref()).await?;
    let totals = fleet_rollup::per_charge_point(&state.pool, from, to, members.as_deref()).await?;
    let mut items: Vec<(String, f64)> = totals
        .into_iter()
        .filter_map(|(cp, s)| {
            let value = match metric {
                Metric::EnergyWh => s.energy_wh,
                Metric::MaxPowerW => s.max_power_w?,
                Metric::Samples => s.samples as f64,
            };
            Some((cp, value))
        })
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(limit);
    let items: Vec<_> = items
        .into_iter()
        .map(|(cp, value)| {
            let value = if metric == Metric::Samples {
                json!(value as u64)
            } else {
                json!(value)
            };
            json!({ "charge_point_id": cp, "value": value })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "metric": query.metric.as_deref().unwrap_or("energy_wh"),
        "from": json::time(from),
        "to": json::time(to),
        "group": query.group,
        "lag_secs": state.lag.rollup_secs,
        "items": items,
    })))
}
