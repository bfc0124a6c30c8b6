//! `/api/v1/charge-points`: the fleet, one charge point, its meter values and latest readings.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use super::read_timing::ReadTiming;
use super::{json, latest, meter_values_body, params, tracked_read, ApiError, ApiState};
use actors::charge_point::{BufferedSamples, ChargePointState, Latest, Snapshot};
use actors::id::ChargePointId;
use actors::sample::Sample;
use actors::store::read_cache::SeriesSelection;
use actors::store::tracked_reads::{Confirmed, Held, ReadKey};
use actors::store::{keys, reads, SampleFilter};
use actors::writer::PendingSamples;

/// Default and largest `limit` of a meter-values query.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;
/// Longest range one query may span (raw data lives 7 days by default; leave room for more).
const MAX_RANGE_DAYS: i64 = 31;

/// Registers the charge point routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/charge-points", web::get().to(list))
        .route("/charge-points/{id}", web::get().to(one))
        .route(
            "/charge-points/{id}/meter-values",
            web::get().to(meter_values),
        )
        .route(
            "/charge-points/{id}/meter-values/latest",
            web::get().to(latest),
        );
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, one, meter_values, latest))]
pub(super) struct Doc;

/// Live state of a connected charge point, `None` when it is not connected (or just left).
async fn live_state(state: &ApiState, id: &ChargePointId) -> Option<ChargePointState> {
    let connection = state.registry.get(id)?;
    connection.actor.send(Snapshot).await.ok()
}

#[utoipa::path(get, path = "/charge-points", tag = "charge points", responses((status = 200, description = "Every charge point ever seen, by id", body = Vec<super::schemas::ChargePoint>), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let mut ids: Vec<String> = reads::charge_point_ids(&state.pool).await?;
    let known: HashSet<String> = ids.iter().cloned().collect();
    for (id, _) in state.registry.all() {
        if !known.contains(id.as_str()) {
            ids.push(id.as_str().to_owned());
        }
    }
    ids.sort();
    let records = reads::charge_points(&state.pool, &ids).await?;
    let holders = state.fleet.holders(&ids).await?;
    let mut out = Vec::with_capacity(ids.len());
    for ((id, record), holder) in ids.iter().zip(records.iter()).zip(holders) {
        let live = match ChargePointId::parse(id) {
            Ok(id) => live_state(&state, &id).await,
            Err(_) => None,
        };
        let instance = match &live {
            Some(_) => Some(state.fleet.id().to_owned()),
            None => holder.map(|o| o.instance),
        };
        out.push(json::charge_point(
            id,
            Some(record),
            live.as_ref(),
            instance,
        ));
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/charge-points/{id}", tag = "charge points", params(("id" = String, Path, description = "Charge point id")), responses((status = 200, description = "The charge point", body = super::schemas::ChargePoint), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "Never seen", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn one(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    let record = reads::charge_point(&state.pool, id.as_str()).await?;
    let live = live_state(&state, &id).await;
    if record.is_none() && live.is_none() {
        return Err(ApiError::NotFound(format!(
            "charge point {id} has never been seen"
        )));
    }
    let (instance, _) = super::holder(&state, &id, 0).await;
    Ok(HttpResponse::Ok().json(json::charge_point(
        id.as_str(),
        record.as_ref(),
        live.as_ref(),
        instance,
    )))
}

/// Query of `/meter-values`; all optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    measurand: Option<String>,
    connector: Option<u32>,
    phase: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

/// Samples of a charge point that are buffered or queued for writing, so reads show them before
/// they reach Redis. Asked before Redis is read: a sample moving on meanwhile is then found in
/// the next place, and duplicates are removed by the caller.
pub(super) async fn unwritten(state: &ApiState, id: &ChargePointId) -> Vec<Sample> {
    let mut samples = Vec::new();
    if let Some(connection) = state.registry.get(id) {
        samples.extend(
            connection
                .actor
                .send(BufferedSamples)
                .await
                .unwrap_or_default(),
        );
    }
    // Each batch with samples counts itself until Redis has it: with none counted, the round
    // trip through the writer's busy mailbox would bring nothing back.
    if !state.unwritten.is_clear(id) {
        samples.extend(
            state
                .writer
                .send(PendingSamples(id.clone()))
                .await
                .unwrap_or_default(),
        );
    }
    samples
}

/// Whether `t` has nothing below the millisecond (what the API's times carry).
fn whole_ms(t: DateTime<Utc>) -> bool {
    t.timestamp_subsec_nanos().is_multiple_of(1_000_000)
}

/// Sorts oldest first and drops repeats of the same reading.
fn sort_and_dedupe(samples: &mut Vec<Sample>) {
    samples.sort_by_key(Sample::identity);
    samples.dedup_by(|a, b| a.identity() == b.identity());
}

#[utoipa::path(get, path = "/charge-points/{id}/meter-values", tag = "charge points", params(("id" = String, Path, description = "Charge point id"), RangeQuery), responses((status = 200, description = "Samples in `[from, to)`, oldest first", body = super::schemas::MeterValues), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn meter_values(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<RangeQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut timing = ReadTiming::start();
    let id = params::charge_point_id(&path)?;
    let measurand = params::measurand(query.measurand.as_deref())?;
    let phase = params::phase(query.phase.as_deref())?;
    let to = match &query.to {
        Some(t) => params::time("to", t)?,
        None => Utc::now() + Duration::milliseconds(1),
    };
    let from = match &query.from {
        Some(f) => params::time("from", f)?,
        None => to - Duration::hours(1),
    };
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    if to - from > Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::BadRequest(format!(
            "the range may span at most {MAX_RANGE_DAYS} days"
        )));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }

    // Filter by series and range while decoding, and stop decoding at `limit` distinct
    // readings: a 24 h read of one series out of ten builds 8,640 samples, not 86,400.
    let filter = SampleFilter {
        measurand,
        connector_id: query.connector,
        phase,
        from: Some(from),
        to: Some(to),
    };
    let wanted = |s: &Sample| {
        s.timestamp >= from
            && s.timestamp < to
            && measurand.is_none_or(|m| s.measurand == m)
            && query.connector.is_none_or(|c| s.connector_id == c)
            && phase.is_none_or(|p| s.phase == Some(p))
    };
    // Through the cache, the body is spliced from rendered hours. Only for a range in whole
    // milliseconds: hours are kept with each reading once, which equals dropping repeats after
    // the range filter only if repeats (same millisecond) are all in range or all out.
    if state.read_cache.enabled() && whole_ms(from) && whole_ms(to) {
        let hours = reads::hours_of(&filter);
        let key = ReadKey::Hours {
            selection: SeriesSelection {
                measurand,
                connector_id: query.connector,
                phase,
            },
            first_hour: hours.first().copied().unwrap_or_default(),
            last_hour: hours.last().copied().unwrap_or_default(),
            rendered: true,
        };
        // The mark is opened before the writer's count is looked at (in `unwritten`).
        let step = tracked_read::begin(&state.tracked, &state.read_cache, id.as_str(), key);
        let mut samples = unwritten(&state, &id).await;
        timing.mark("unwritten");
        samples.retain(wanted);
        // The owner record rides in the same pipeline (one round trip: every hop between
        // processes was a chance to wait, docs/performance.md, issue 13 reads, third round).
        let owner_key = keys::owner(id.as_str());
        let (hours, owner) = match step {
            tracked_read::Step::Answered(confirmed) => match confirmed.held {
                Held::Hours(hours) => (hours, confirmed.beside),
                Held::Buckets(_) => unreachable!("an hours key holds hours"),
            },
            tracked_read::Step::Ask(opened) => {
                let clear = state.unwritten.is_clear(&id);
                let (hours, owner) = tracked_read::redis_step(
                    &state.tracked,
                    opened,
                    clear,
                    async |conn| {
                        reads::hours_matching_cached_on(
                            conn,
                            &state.read_cache,
                            id.as_str(),
                            &filter,
                            Some(&json::render_sample),
                            Some(&owner_key),
                        )
                        .await
                    },
                    async || {
                        reads::hours_matching_cached_beside(
                            &state.reads_pool,
                            &state.read_cache,
                            id.as_str(),
                            &filter,
                            Some(&json::render_sample),
                            Some(&owner_key),
                        )
                        .await
                    },
                    |(hours, owner)| Confirmed {
                        held: Held::Hours(Arc::from(hours.as_slice())),
                        beside: owner.clone(),
                    },
                )
                .await
                .map(|(hours, owner)| (Arc::<[_]>::from(hours), owner))?;
                (hours, owner)
            }
        };
        timing.mark("redis");
        let parts = meter_values_body::samples_parts(&hours, samples, from, to, limit);
        timing.mark("splice");
        let (instance, buffered_elsewhere_secs) =
            super::holder_from(&state, &id, state.lag.raw_secs, owner).await;
        timing.mark("holder");
        let head = meter_values_body::Head {
            buffered_elsewhere_secs,
            charge_point_id: id.as_str(),
            from: json::time(from),
            instance,
        };
        return match meter_values_body::body(&head, parts, to) {
            Ok(parts) => {
                let response = meter_values_body::response(parts);
                timing.mark("body");
                timing.finish(id.as_str(), "meter-values");
                Ok(response)
            }
            Err(e) => {
                log::error!("{id}: cannot render a meter-values response: {e}");
                Ok(HttpResponse::InternalServerError().finish())
            }
        };
    }
    let mut samples = unwritten(&state, &id).await;
    samples.extend(
        reads::samples_matching_cached(&state.pool, &state.read_cache, id.as_str(), &filter, limit)
            .await?,
    );
    samples.retain(wanted);
    sort_and_dedupe(&mut samples);
    samples.truncate(limit);
    let (instance, buffered_elsewhere_secs) = super::holder(&state, &id, state.lag.raw_secs).await;
    // ~200 bytes per sample as rendered.
    let size_hint = 256 + 220 * samples.len();
    let body = MeterValuesBody {
        buffered_elsewhere_secs,
        charge_point_id: id.as_str(),
        from: json::time(from),
        instance,
        samples: json::SamplesJson(&samples),
        to: json::time(to),
    };
    Ok(json::ok_sized(&body, size_hint))
}

/// The body of `/meter-values`, serialised straight into the response (no `Value` tree); its
/// fields in the sorted order a `serde_json::Value` map wrote them.
#[derive(serde::Serialize)]
struct MeterValuesBody<'a> {
    buffered_elsewhere_secs: Option<u64>,
    charge_point_id: &'a str,
    from: String,
    instance: Option<String>,
    samples: json::SamplesJson<'a>,
    to: String,
}

#[utoipa::path(get, path = "/charge-points/{id}/meter-values/latest", tag = "charge points", params(("id" = String, Path, description = "Charge point id")), responses((status = 200, description = "The newest sample per connector, measurand and phase", body = super::schemas::LatestSamples), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn latest(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    let mut candidates = latest::stored_candidates(&state, &id).await?;
    if let Some(connection) = state.registry.get(&id) {
        candidates.extend(connection.actor.send(Latest).await.unwrap_or_default());
    }
    let newest = latest::newest_per_series(candidates);
    let (instance, buffered_elsewhere_secs) =
        super::holder(&state, &id, state.lag.latest_secs).await;
    Ok(HttpResponse::Ok().json(json!({
        "charge_point_id": id.as_str(),
        "samples": newest.iter().map(json::sample).collect::<Vec<_>>(),
        "instance": instance,
        "buffered_elsewhere_secs": buffered_elsewhere_secs,
    })))
}
