//! The admin HTTP API: JSON over HTTP, one file per resource. Errors are `{"error": "..."}` with
//! a fitting status, so scripts can show the reason as is.

pub mod aggregates;
mod alerts;
mod charge_points;
pub mod commands;
mod csv;
pub mod event_hub;
mod events;
mod fleet;
mod fleet_transactions;
mod groups;
mod health;
mod id_tags;
pub(crate) mod json;
mod latest;
mod meter_values_body;
pub mod metrics;
pub mod openapi;
mod params;
mod passwords;
mod read_timing;
mod schemas;
mod stats;
mod thresholds;
mod tracked_read;
mod transactions;
mod writeback;

use std::sync::Arc;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use actors::redis_pool::Pool;

use actors::charge_point::ChargePointActor;
use actors::counters::IngestCounters;
use actors::registry::Registry;
use actors::store::reads::ReadError;
use actors::writer::{RedisWriter, WriterStats};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Redis, for reads (each HTTP worker's own, see `ocpp_meter::start`).
    pub pool: Pool,
    /// Redis, for the large reads (`/meter-values`; `/aggregates` has it in its own state):
    /// the worker's [`Pool::reads_sibling`], whose connections skip the `PING` at hand-out.
    pub reads_pool: Pool,
    /// Decoded raw hours (and roll-up buckets, through `AggregatesState`) kept between reads,
    /// checked against Redis at every use (or vouched for by its client tracking, `tracked`).
    pub read_cache: Arc<actors::store::read_cache::ReadCache>,
    /// Connected charge points, for live state.
    pub registry: Registry<ChargePointActor>,
    /// The writer, for samples not yet in Redis.
    pub writer: Addr<RedisWriter>,
    /// Charge points with samples handed to the writer and not yet in Redis: a raw read of
    /// any other skips asking the writer.
    pub unwritten: Arc<actors::backlog::Backlog>,
    /// Writer health, for `/ready`.
    pub writer_stats: Arc<WriterStats>,
    /// Ingest counters.
    pub counters: Arc<IngestCounters>,
    /// `buffer.max_pending_samples`, the backlog bound `/ready` compares against.
    pub max_pending_samples: usize,
    /// The live event hub, joined by `GET /api/v1/events`.
    pub events: Addr<event_hub::EventHub>,
    /// The alert supervisor: thresholds in force, acknowledgements of active alerts.
    pub alerts: Addr<actors::alerts::AlertSupervisor>,
    /// The write-ahead log, whose trouble (full, failing) `/ready` reports.
    pub wal: Option<actors::wal::Wal>,
    /// The fleet: which instance holds a charge point, calls routed to it.
    pub fleet: actors::fleet::Fleet,
    /// How far Redis may lag behind a charge point held by another instance, per kind of read.
    pub lag: ReadLag,
    /// This worker's tracked connection and the marks of large reads Redis vouches for
    /// (`actors::store::tracked_reads`), so a warm read needs no round trip.
    pub tracked: Arc<actors::store::tracked_reads::TrackedLink>,
}

/// The read rule for a charge point held by another instance: answers come from Redis, which
/// lacks what that instance still buffers; the answer says so (`instance`,
/// `buffered_elsewhere_secs`) with the longest that can be, from this instance's
/// configuration (the fleet is meant to share one).
#[derive(Debug, Clone, Copy)]
pub struct ReadLag {
    /// Raw samples: `buffer.max_age_secs`.
    pub raw_secs: u64,
    /// Latest values: `buffer.max_age_secs` + `buffer.latest_interval_secs`.
    pub latest_secs: u64,
    /// Roll-ups: `buffer.rollup_interval_secs`.
    pub rollup_secs: u64,
    /// Statistics snapshot: written every 30 s while something changes.
    pub stats_secs: u64,
}

/// Who holds a charge point's session, for a read: `(instance, buffered_elsewhere_secs)`.
/// Held here: this instance and `None` (the read includes what is buffered here). Held by
/// another instance: that instance and `Some(lag_secs)`. Held by nobody (or Redis cannot say):
/// `(None, None)`.
pub async fn holder(
    state: &ApiState,
    id: &actors::id::ChargePointId,
    lag_secs: u64,
) -> (Option<String>, Option<u64>) {
    if state.registry.get(id).is_some() {
        return (Some(state.fleet.id().to_owned()), None);
    }
    let owner = state.fleet.holder_via(&state.pool, id).await;
    elsewhere(state, owner.ok().flatten(), lag_secs)
}

/// [`holder`] from the owner record a read fetched in its own pipeline (`Some(record)`, the
/// key's value or `None` when it has none; `None`: not fetched, asked here).
pub async fn holder_from(
    state: &ApiState,
    id: &actors::id::ChargePointId,
    lag_secs: u64,
    record: Option<Option<String>>,
) -> (Option<String>, Option<u64>) {
    match record {
        Some(_) if state.registry.get(id).is_some() => (Some(state.fleet.id().to_owned()), None),
        Some(record) => {
            let owner = state.fleet.holder_in(id.as_str(), record.as_deref());
            elsewhere(state, owner, lag_secs)
        }
        None => holder(state, id, lag_secs).await,
    }
}

/// The answer of [`holder`] for a charge point not connected here, held by `owner`.
fn elsewhere(
    state: &ApiState,
    owner: Option<actors::fleet::Owner>,
    lag_secs: u64,
) -> (Option<String>, Option<u64>) {
    match owner {
        Some(owner) if owner.instance != state.fleet.id() => (Some(owner.instance), Some(lag_secs)),
        _ => (None, None),
    }
}

/// Registers every route of the admin API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure)
        .configure(metrics::configure)
        .service(
            web::scope("/api/v1")
                .configure(openapi::configure)
                .configure(charge_points::configure)
                .configure(commands::configure)
                .configure(passwords::configure)
                .configure(aggregates::configure)
                .configure(transactions::configure)
                .configure(fleet_transactions::configure)
                .configure(id_tags::configure)
                .configure(alerts::configure)
                .configure(thresholds::configure)
                .configure(stats::configure)
                .configure(groups::configure)
                .configure(fleet::configure)
                .configure(events::configure),
        )
        .default_service(web::to(|| async {
            error_response(StatusCode::NOT_FOUND, "no such route".to_owned())
        }));
}

/// A JSON error body with `status`.
pub fn error_response(status: StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

/// Errors of the API handlers, each with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad query or path parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// Redis could not answer (503).
    #[error(transparent)]
    Store(#[from] ReadError),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        error_response(self.status_code(), self.to_string())
    }
}

/// Turns actix-web's own query/path/JSON errors into the same `{"error"}` shape.
pub fn json_error_handlers(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::BadRequest(err.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| ApiError::BadRequest(err.to_string()).into()),
    )
    .app_data(
        web::JsonConfig::default()
            .error_handler(|err, _| ApiError::BadRequest(err.to_string()).into()),
    );
}
