//! `PUT/DELETE /api/v1/charge-points/{id}/password`: a charge point's HTTP Basic password
//! (OCPP 1.6 security profiles 1 and 2). Stored only as an argon2 hash; never returned or
//! logged.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{error_response, params, ApiError, ApiState};
use crate::security::passwords::{self, PasswordError};
use actors::store::credentials;

/// Registers the password routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/charge-points/{id}/password", web::put().to(set_password))
        .route(
            "/charge-points/{id}/password",
            web::delete().to(delete_password),
        );
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(set_password, delete_password))]
pub(super) struct Doc;

/// Body of the PUT.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// 204 once the hash is stored; 400 for a bad id or a password outside 16-40 characters.
#[utoipa::path(put, path = "/charge-points/{id}/password", tag = "security", params(("id" = String, Path, description = "Charge point id")), request_body = PasswordBody, responses((status = 204, description = "The hash is stored; the charge point must now authenticate with HTTP Basic"), (status = 400, description = "Bad id, or a password outside 16-40 characters", body = super::schemas::ErrorBody), (status = 500, description = "The password could not be hashed", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn set_password(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    let password = body.into_inner().password;
    passwords::validate(&password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hashed = web::block(move || passwords::hash(&password)).await;
    let phc = match hashed {
        Ok(Ok(phc)) => phc,
        Ok(Err(PasswordError::Invalid)) => {
            return Err(ApiError::BadRequest(PasswordError::Invalid.to_string()))
        }
        Ok(Err(error)) => {
            log::error!("{id}: {error}.");
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot hash the password".to_owned(),
            ));
        }
        Err(error) => {
            log::error!("{id}: the password hashing thread failed ({error}).");
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot hash the password".to_owned(),
            ));
        }
    };
    credentials::set_password_hash(&state.pool, id.as_str(), &phc).await?;
    log::info!("{id}: password set; it must now authenticate with HTTP Basic.");
    Ok(HttpResponse::NoContent().finish())
}

/// 204 when a password was removed, 404 when there was none.
#[utoipa::path(delete, path = "/charge-points/{id}/password", tag = "security", params(("id" = String, Path, description = "Charge point id")), responses((status = 204, description = "The password is removed"), (status = 400, description = "Bad id", body = super::schemas::ErrorBody), (status = 404, description = "The charge point had no password", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn delete_password(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    if credentials::delete_password_hash(&state.pool, id.as_str()).await? {
        log::info!(
            "{id}: password removed; ocpp.unknown_charge_points now decides whether it gets in."
        );
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!(
            "charge point {id} has no password"
        )))
    }
}
