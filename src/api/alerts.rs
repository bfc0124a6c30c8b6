//! `/api/v1/alerts`: alert history and active alerts, newest first, and acknowledgement.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{error_response, ApiError, ApiState};
use actors::alerts::Acknowledge;
use actors::exchange::AlertState;
use actors::id::ChargePointId;
use actors::store::alerts::{self as store, AlertQuery};

/// Default and largest `limit`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Registers the alert routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/alerts", web::get().to(list))
        .route("/alerts/{alert_id}/ack", web::post().to(acknowledge));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, acknowledge))]
pub(super) struct Doc;

/// Query of `GET /api/v1/alerts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    charge_point: Option<String>,
    state: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/alerts", tag = "alerts", params(ListQuery), responses((status = 200, description = "`{\"alerts\": [...]}`, newest first", body = serde_json::Value), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn list(
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let charge_point = match query.charge_point.as_deref() {
        Some(id) => {
            Some(ChargePointId::parse(id).map_err(|e| ApiError::BadRequest(e.to_string()))?)
        }
        None => None,
    };
    let alert_state = match query.state.as_deref().unwrap_or("all") {
        "all" => None,
        other => Some(AlertState::parse(other).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "state must be active, cleared or all, not {other:?}"
            ))
        })?),
    };
    let since = match query.since.as_deref() {
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|e| ApiError::BadRequest(format!("since {text:?} is not RFC 3339: {e}")))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let alerts = store::list(
        &state.pool,
        &AlertQuery {
            charge_point,
            state: alert_state,
            since,
            limit,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "alerts": alerts })))
}

#[utoipa::path(post, path = "/alerts/{alert_id}/ack", tag = "alerts", params(("alert_id" = String, Path, description = "Alert id")), responses((status = 200, description = "The alert with `acknowledged_at` set", body = serde_json::Value), (status = 404, description = "No such alert", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn acknowledge(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let answer = state
        .alerts
        .send(Acknowledge {
            id: id.clone(),
            at: Utc::now(),
        })
        .await;
    match answer {
        Ok(Ok(Some(alert))) => Ok(HttpResponse::Ok().json(alert)),
        Ok(Ok(None)) => Err(ApiError::NotFound(format!("no alert {id:?}"))),
        Ok(Err(error)) => Err(ApiError::Store(error)),
        Err(_) => Ok(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the alert supervisor is restarting; try again".to_owned(),
        )),
    }
}
