//! `/api/v1/thresholds` and `/api/v1/charge-points/{id}/thresholds`: the global alert
//! thresholds and per charge point overrides. Stored in Redis first, then handed to the alert
//! supervisor, so what a PUT answered survives a restart.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::writeback::Document;
use super::{error_response, params, ApiError, ApiState};
use actors::alerts::{GetThresholds, SetThresholds};
use actors::exchange::Thresholds;
use actors::id::ChargePointId;
use actors::store::alerts as store;

/// Registers the threshold routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/thresholds", web::get().to(get_global))
        .route("/thresholds", web::put().to(put_global))
        .route("/charge-points/{id}/thresholds", web::get().to(get_one))
        .route("/charge-points/{id}/thresholds", web::put().to(put_one))
        .route(
            "/charge-points/{id}/thresholds",
            web::delete().to(delete_one),
        );
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_global, put_global, get_one, put_one, delete_one))]
pub(super) struct Doc;

/// Fields a `GET` of a thresholds route adds that a `PUT` cannot set: sent back (a client that
/// reads, edits and writes the document back), they are accepted and ignored, while any other
/// unknown field is still a 400, so a typo never passes as a silently ignored limit.
const READ_ONLY_FIELDS: &[&str] = &["source"];

/// Reads and validates a whole thresholds document; the error names the field.
fn parse_document(body: &[u8]) -> Result<Thresholds, ApiError> {
    let mut document =
        Document::parse(body, "thresholds document").map_err(ApiError::BadRequest)?;
    document.ignore(READ_ONLY_FIELDS);
    let thresholds: Thresholds = document.read().map_err(ApiError::BadRequest)?;
    thresholds
        .validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(thresholds)
}

fn unavailable() -> HttpResponse {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "the alert supervisor is restarting; try again".to_owned(),
    )
}

async fn effective(state: &ApiState, charge_point: Option<ChargePointId>) -> HttpResponse {
    let scoped = charge_point.is_some();
    match state.alerts.send(GetThresholds { charge_point }).await {
        Ok(answer) => {
            let mut doc = json!(answer.thresholds);
            if scoped {
                doc["source"] = json!(answer.source.as_str());
            }
            HttpResponse::Ok().json(doc)
        }
        Err(_) => unavailable(),
    }
}

async fn set(
    state: &ApiState,
    charge_point: Option<ChargePointId>,
    thresholds: Option<Thresholds>,
) -> Result<HttpResponse, ApiError> {
    match (&charge_point, &thresholds) {
        (cp, Some(t)) => store::save_thresholds(&state.pool, cp.as_ref(), t).await?,
        (Some(cp), None) => store::delete_override(&state.pool, cp).await?,
        (None, None) => {}
    }
    if state
        .alerts
        .send(SetThresholds {
            charge_point: charge_point.clone(),
            thresholds,
        })
        .await
        .is_err()
    {
        return Ok(unavailable());
    }
    Ok(effective(state, charge_point).await)
}

#[utoipa::path(get, path = "/thresholds", tag = "alerts", responses((status = 200, description = "The global thresholds", body = super::schemas::Thresholds), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn get_global(state: web::Data<ApiState>) -> HttpResponse {
    effective(&state, None).await
}

#[utoipa::path(put, path = "/thresholds", tag = "alerts", request_body = super::schemas::Thresholds, responses((status = 200, description = "The new global thresholds", body = super::schemas::Thresholds), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn put_global(
    state: web::Data<ApiState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let thresholds = parse_document(&body)?;
    set(&state, None, Some(thresholds)).await
}

#[utoipa::path(get, path = "/charge-points/{id}/thresholds", tag = "alerts", params(("id" = String, Path, description = "Charge point id")), responses((status = 200, description = "The thresholds in force, with `source`", body = super::schemas::Thresholds), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn get_one(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    Ok(effective(&state, Some(id)).await)
}

#[utoipa::path(put, path = "/charge-points/{id}/thresholds", tag = "alerts", params(("id" = String, Path, description = "Charge point id")), request_body = super::schemas::Thresholds, responses((status = 200, description = "The override now in force", body = super::schemas::Thresholds), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn put_one(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    let thresholds = parse_document(&body)?;
    set(&state, Some(id), Some(thresholds)).await
}

#[utoipa::path(delete, path = "/charge-points/{id}/thresholds", tag = "alerts", params(("id" = String, Path, description = "Charge point id")), responses((status = 200, description = "The global thresholds, now in force", body = super::schemas::Thresholds), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn delete_one(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    set(&state, Some(id), None).await
}
