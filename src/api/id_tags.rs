//! `GET /api/v1/id-tags/{id_tag}/energy`: the energy booked to one idTag (a driver, a fleet
//! card) per hour or day, from the register readings of the transactions it started.
//!
//! Per transaction of the idTag (from its start-time index), its `Energy.Active.Import.Register`
//! readings (carrying its id, on its connector, no phase, Outlet, normalised Wh; each reading
//! once, oldest first) are turned into energy by the roll-ups' own rule
//! (`store::aggregates::register_energy`): the increase between consecutive readings is spread
//! linearly over the time between them and split at bucket boundaries; a decrease (meter reset)
//! or an increase above 1 MW on average books nothing. So a bucket holds what
//! `/charge-points/{id}/aggregates` books to it for the same readings. Energy before a
//! transaction's first reading or after its last one is not booked: meter_start/meter_stop of
//! Start/StopTransaction are not readings (a charge point that sends Transaction.Begin and
//! Transaction.End readings has them counted).

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{charge_points, json, params, ApiError, ApiState};
use actors::id::ChargePointId;
use actors::sample::Sample;
use actors::store::aggregates::register_energy;
use actors::store::reads;
use actors::store::transactions as index;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/id-tags/{id_tag}/energy", web::get().to(energy));
}

/// The OpenAPI description of the route above (`openapi.rs` merges it); a route added here
/// without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(energy))]
pub(super) struct Doc;

/// Query of `/id-tags/{id_tag}/energy`; all optional, as for the roll-ups.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EnergyQuery {
    /// `hour` (default) or `day`; buckets are aligned to UTC.
    period: Option<String>,
    /// Start of the range (RFC 3339); default `to` minus 24 hours (hour) or 30 days (day).
    from: Option<String>,
    /// End of the range (RFC 3339), exclusive; default now. At most 31 days after `from` for
    /// hours, 400 for days.
    to: Option<String>,
}

#[utoipa::path(get, path = "/id-tags/{id_tag}/energy", tag = "transactions", params(("id_tag" = String, Path, description = "The idTag (compared without regard to case, as OCPP compares idTags)"), EnergyQuery), responses((status = 200, description = "`{id_tag, period, from, to, buckets: [{start, energy_wh, transactions}]}`: one bucket per period whose start is in `[from, to)` (as `/aggregates`), empty ones included. `energy_wh`: the increase of the Energy.Active.Import.Register readings of the idTag's transactions (readings carrying the transaction id; its connector, no phase, Outlet, Wh; repeats counted once) booked where it happened, split linearly between consecutive readings across bucket boundaries; a decrease (meter reset) or more than 1 MW on average books nothing (the roll-ups' rule). `transactions`: how many of the idTag's transactions ran during the bucket (start before its end, stop, or now while running, after its start).", body = serde_json::Value), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn energy(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<EnergyQuery>,
) -> Result<HttpResponse, ApiError> {
    let id_tag = path.into_inner();
    if id_tag.is_empty() || id_tag.len() > 20 {
        return Err(ApiError::BadRequest(format!(
            "id_tag must be 1 to 20 characters (an OCPP idTag), not {id_tag:?}"
        )));
    }
    let period = params::period(query.period.as_deref())?;
    let (from, to) = params::rollup_range(period, query.from.as_deref(), query.to.as_deref())?;

    // Buckets whose start is in [from, to), as the roll-ups answer.
    let len = period.length_ms();
    let mut buckets: BTreeMap<i64, (f64, u64)> = period
        .starts_in(from, to)
        .into_iter()
        .map(|start| (start, (0.0, 0)))
        .collect();
    if let (Some(&first), Some(&last)) = (buckets.keys().next(), buckets.keys().next_back()) {
        let end = last + len;
        let now_ms = Utc::now().timestamp_millis();
        index::ensure_fleet_index(&state.pool).await?;
        let positions = index::id_tag_started_before(&state.pool, &id_tag, end).await?;
        let ids: Vec<i32> = positions.iter().map(|p| p.id).collect();
        let records = reads::transactions(&state.pool, &ids).await?;
        // Readings still buffered, asked once per charge point.
        let mut unwritten: HashMap<String, Vec<Sample>> = HashMap::new();
        for (position, record) in positions.iter().zip(records) {
            let Some(record) = record else { continue };
            if !record
                .get("id_tag")
                .is_some_and(|t| t.eq_ignore_ascii_case(&id_tag))
            {
                continue;
            }
            let stop_ms = index::stop_ms(&record).unwrap_or(now_ms);
            if stop_ms <= first {
                continue;
            }
            for (&b, (_, count)) in buckets.iter_mut() {
                if position.start_ms < b + len && stop_ms > b {
                    *count += 1;
                }
            }
            let (Some(cp), Some(connector)) = (
                record
                    .get("charge_point_id")
                    .and_then(|cp| ChargePointId::parse(cp).ok()),
                record
                    .get("connector_id")
                    .and_then(|c| c.parse::<u32>().ok()),
            ) else {
                continue;
            };
            let (Some(from), Some(to)) = (
                DateTime::from_timestamp_millis(position.start_ms),
                DateTime::from_timestamp_millis(stop_ms.max(position.start_ms)),
            ) else {
                continue;
            };
            if !unwritten.contains_key(cp.as_str()) {
                let buffered = charge_points::unwritten(&state, &cp).await;
                unwritten.insert(cp.as_str().to_owned(), buffered);
            }
            let mut samples: Vec<Sample> = unwritten
                .get(cp.as_str())
                .into_iter()
                .flatten()
                .filter(|s| s.transaction_id == Some(position.id))
                .cloned()
                .collect();
            samples.extend(
                index::connector_samples(
                    &state.pool,
                    &state.read_cache,
                    cp.as_str(),
                    connector,
                    from,
                    to,
                )
                .await?,
            );
            let readings = index::transaction_readings(&samples, position.id, connector);
            let (parts, _) = register_energy(period, None, &readings.registers);
            for (b, wh) in parts {
                if let Some((energy, _)) = buckets.get_mut(&b) {
                    *energy += wh;
                }
            }
        }
    }
    let buckets: Vec<_> = buckets
        .into_iter()
        .filter_map(|(start, (energy_wh, transactions))| {
            Some(json!({
                "start": json::time(DateTime::from_timestamp_millis(start)?),
                "energy_wh": energy_wh,
                "transactions": transactions,
            }))
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "id_tag": id_tag,
        "period": period.as_str(),
        "from": json::time(from),
        "to": json::time(to),
        "buckets": buckets,
    })))
}
