//! `/api/v1/groups`: named sets of charge points (sites, depots, customers) that the fleet
//! queries (`fleet.rs`, the transaction list) filter by. Stored in Redis (`store::groups`), so
//! every instance of a scaled-out fleet sees the same groups.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::writeback::Document;
use super::{ApiError, ApiState};
use actors::store::groups::{self, Group};

/// Registers the group routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::get().to(list))
        .route("/groups/{group_id}", web::get().to(one))
        .route("/groups/{group_id}", web::put().to(put))
        .route("/groups/{group_id}", web::delete().to(delete));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, one, put, delete))]
pub(super) struct Doc;

/// Body of the PUT: what a group is. `group_id` (what the GET adds) is accepted and ignored,
/// so a read document can be edited and written back.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    /// Display name.
    #[serde(default)]
    name: String,
    /// Member charge point ids (need not be known yet).
    charge_points: Vec<String>,
}

fn group_id(raw: &str) -> Result<&str, ApiError> {
    groups::check_id(raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(raw)
}

fn document(id: &str, group: &Group) -> serde_json::Value {
    json!({ "group_id": id, "name": group.name, "charge_points": group.charge_points })
}

#[utoipa::path(get, path = "/groups", tag = "fleet", responses((status = 200, description = "`{groups}`: every group, by id", body = super::schemas::Groups), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn list(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let all = groups::list(&state.pool).await?;
    let items: Vec<_> = all.iter().map(|(id, g)| document(id, g)).collect();
    Ok(HttpResponse::Ok().json(json!({ "groups": items })))
}

#[utoipa::path(get, path = "/groups/{group_id}", tag = "fleet", params(("group_id" = String, Path, description = "Group id")), responses((status = 200, description = "The group", body = super::schemas::GroupDocument), (status = 400, description = "Bad group id", body = super::schemas::ErrorBody), (status = 404, description = "No such group", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn one(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = group_id(&path)?;
    let group = groups::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("group {id} is unknown")))?;
    Ok(HttpResponse::Ok().json(document(id, &group)))
}

#[utoipa::path(put, path = "/groups/{group_id}", tag = "fleet", params(("group_id" = String, Path, description = "Group id: 1-64 letters, digits, '.', '_', ':' or '-'")), request_body = GroupBody, responses((status = 201, description = "Created; the stored group", body = super::schemas::GroupDocument), (status = 200, description = "Replaced; the stored group", body = super::schemas::GroupDocument), (status = 400, description = "Bad id or document, the offending field named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn put(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id = group_id(&path)?;
    let mut doc = Document::parse(&body, "group document").map_err(ApiError::BadRequest)?;
    if let Some(named) = doc.take("group_id") {
        if named.as_str() != Some(id) {
            return Err(ApiError::BadRequest(format!(
                "group_id {named} in the body differs from {id:?} in the path"
            )));
        }
    }
    let body: GroupBody = doc.read().map_err(ApiError::BadRequest)?;
    let group = Group::new(body.name, body.charge_points)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let created = groups::put(&state.pool, id, &group).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(document(id, &group)))
}

#[utoipa::path(delete, path = "/groups/{group_id}", tag = "fleet", params(("group_id" = String, Path, description = "Group id")), responses((status = 204, description = "Deleted"), (status = 400, description = "Bad group id", body = super::schemas::ErrorBody), (status = 404, description = "No such group", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn delete(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = group_id(&path)?;
    if groups::delete(&state.pool, id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("group {id} is unknown")))
    }
}

/// The members of the group a query's `group` parameter names (`None`: no filter): a 400 for a
/// malformed id, a 404 for an unknown group, so a typo never reads as "no energy".
pub(super) async fn filter(
    state: &ApiState,
    group: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = group else {
        return Ok(None);
    };
    groups::check_id(raw).map_err(|e| ApiError::BadRequest(format!("group: {e}")))?;
    groups::members(&state.pool, raw)
        .await?
        .map(Some)
        .ok_or_else(|| ApiError::NotFound(format!("group {raw} is unknown")))
}
