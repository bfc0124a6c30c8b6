//! `/api/v1/transactions/{id}`: one transaction, with the energy it used once stopped.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{ApiError, ApiState};
use actors::store::reads;

/// Registers the transaction routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/transactions/{id}", web::get().to(one));
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(one))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/transactions/{id}", tag = "transactions", params(("id" = i64, Path, description = "Transaction id")), responses((status = 200, description = "The transaction (see the README for its fields)", body = serde_json::Value), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "No such transaction", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn one(
    state: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i32 = path.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "transaction id {:?} is not an integer",
            path.as_str()
        ))
    })?;
    let record = reads::transaction(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("transaction {id} is unknown")))?;
    let text = |field: &str| record.get(field).cloned();
    let number = |field: &str| record.get(field).and_then(|v| v.parse::<i64>().ok());
    let meter_start = number("meter_start");
    let meter_stop = number("meter_stop");
    let energy_wh = match (meter_start, meter_stop) {
        (Some(start), Some(stop)) => json!(stop - start),
        _ => Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({
        "transaction_id": id,
        "charge_point_id": text("charge_point_id"),
        "connector_id": number("connector_id"),
        "id_tag": text("id_tag"),
        "meter_start": meter_start,
        "start_time": text("start_time"),
        "meter_stop": meter_stop,
        "stop_time": text("stop_time"),
        "stop_id_tag": text("stop_id_tag"),
        "stop_reason": text("stop_reason"),
        "state": if meter_stop.is_some() { "stopped" } else { "active" },
        "energy_wh": energy_wh,
    })))
}
