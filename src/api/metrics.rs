//! `GET /metrics`: Prometheus text exposition, open like `/health` so a scraper needs no token.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::error_response;
use crate::metrics::Metrics;

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registers `/metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub(super) struct Doc;

/// Every metric in Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Every metric in Prometheus text format 0.0.4 (no token needed)", content_type = "text/plain", body = String), (status = 500, description = "The metrics could not be encoded", body = super::schemas::ErrorBody)))]
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    match metrics.encode() {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(error) => {
            log::error!("Cannot encode the metrics: {error}.");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics".to_owned(),
            )
        }
    }
}
