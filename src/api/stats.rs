//! `GET /api/v1/charge-points/{id}/stats`: real-time statistics of a charge point, from its
//! `ChargePointActor` while it is connected, from the snapshot in Redis otherwise.

use actix_web::{web, HttpResponse};
use chrono::Utc;

use super::{json, latest, ApiError, ApiState};
use actors::charge_point::Stats;
use actors::id::ChargePointId;
use actors::stats::{ChargePointStats, StoredStats};
use actors::store::reads;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/charge-points/{id}/stats", web::get().to(stats));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(stats))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/charge-points/{id}/stats", tag = "charge points", params(("id" = String, Path, description = "Charge point id")), responses((status = 200, description = "Real-time statistics (see the README)", body = serde_json::Value), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "Never seen", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn stats(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ChargePointId::parse(&path).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(connection) = state.registry.get(&id) {
        if let Ok(live) = connection.actor.send(Stats).await {
            let mut body = json::stats(id.as_str(), &live);
            body["instance"] = serde_json::json!(state.fleet.id());
            body["buffered_elsewhere_secs"] = serde_json::Value::Null;
            return Ok(HttpResponse::Ok().json(body));
        }
    }
    let stored = stored(&state, &id).await?;
    let mut body = json::stats(id.as_str(), &stored);
    let (instance, lag) = super::holder(&state, &id, state.lag.stats_secs).await;
    if instance.is_some() {
        // Held by another instance: connected, figures as of its last snapshot.
        body["connected"] = serde_json::Value::Bool(true);
    }
    body["instance"] = serde_json::json!(instance);
    body["buffered_elsewhere_secs"] = serde_json::json!(lag);
    Ok(HttpResponse::Ok().json(body))
}

/// Statistics of a charge point that is not connected: the snapshot its last session left, with
/// the newest stored samples (plus those still waiting for the writer). A charge point that is
/// known but whose snapshot has expired gets empty figures; one never seen is a 404.
async fn stored(state: &ApiState, id: &ChargePointId) -> Result<ChargePointStats, ApiError> {
    let now = Utc::now();
    let document = reads::stats_document(&state.pool, id.as_str()).await?;
    let snapshot = match document.as_deref().map(serde_json::from_str::<StoredStats>) {
        Some(Ok(snapshot)) => Some(snapshot),
        Some(Err(error)) => {
            log::error!("{id}: stored statistics are unreadable: {error}.");
            None
        }
        None => None,
    };
    let snapshot = match snapshot {
        Some(snapshot) => snapshot,
        None => {
            if reads::charge_point(&state.pool, id.as_str())
                .await?
                .is_none()
            {
                return Err(ApiError::NotFound(format!(
                    "charge point {id} has never been seen"
                )));
            }
            StoredStats {
                session_started_at: now,
                updated_at: now,
                samples_total: 0,
                samples_window: Default::default(),
                messages_window: Default::default(),
                active_power_w: None,
                last_meter_values_at: None,
                open_transactions: Vec::new(),
            }
        }
    };
    let newest = latest::newest_per_series(latest::stored_candidates(state, id).await?);
    Ok(snapshot.view(now, false, newest))
}
