//! `GET /api/v1/events`: the live event stream as Server-Sent Events (`sample`, `alert`,
//! `alert_cleared`, `connected`, `disconnected`, `status`), optionally for one charge point
//! (`?charge_point=`). The frames come from the [`super::event_hub::EventHub`]; this handler only
//! joins it and streams the client's channel as the response body.

use std::convert::Infallible;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::event_hub::Join;
use super::{error_response, ApiError, ApiState};
use actors::id::ChargePointId;

/// Registers the route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(events));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(events))]
pub(super) struct Doc;

/// Query of `/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Only this charge point's events.
    charge_point: Option<String>,
}

#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery), responses((status = 200, description = "Server-Sent Events: samples, session events and alerts (see the README)", content_type = "text/event-stream", body = String), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody)))]
async fn events(
    state: web::Data<ApiState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let charge_point = match &query.charge_point {
        Some(raw) => {
            Some(ChargePointId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))?)
        }
        None => None,
    };
    let Ok(rx) = state.events.send(Join { charge_point }).await else {
        return Ok(error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the event stream is restarting; try again".to_owned(),
        ));
    };
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<Bytes, Infallible>(frame), rx))
    });
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        // nginx buffers responses unless told otherwise, which would hold events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
