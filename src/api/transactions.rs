//! `/api/v1/transactions/{id}`: one transaction, with the energy it used once stopped, and
//! `/api/v1/charge-points/{id}/transactions`: a charge point's transactions, newest first, read
//! through the per-charge-point index `ocpp:{cp}:txns` the writer keeps at StartTransaction.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{params, ApiError, ApiState};
use actors::store::reads::{self, TransactionRecord};

/// Default and largest `limit` of a charge point's transaction list.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// Registers the transaction routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/transactions/{id}", web::get().to(one)).route(
        "/charge-points/{id}/transactions",
        web::get().to(of_charge_point),
    );
}

/// The OpenAPI description of the routes above (`openapi.rs` merges it); a route added
/// here without its handler listed fails `tests/openapi.rs`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(one, of_charge_point))]
pub(super) struct Doc;

#[utoipa::path(get, path = "/transactions/{id}", tag = "transactions", params(("id" = i64, Path, description = "Transaction id")), responses((status = 200, description = "The transaction (see the README for its fields)", body = super::schemas::Transaction), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "No such transaction", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
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
    Ok(HttpResponse::Ok().json(document(id, &record)))
}

/// Which transactions of a charge point to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StateFilter {
    Active,
    Stopped,
    All,
}

/// Query of `GET /api/v1/charge-points/{id}/transactions`. `limit` is read as text so that a
/// bad value gets a 400 naming `limit` rather than a bare parser message.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `active`, `stopped` or `all` (default).
    state: Option<String>,
    /// How many, newest start first: 1 to 500, default 50.
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

#[utoipa::path(get, path = "/charge-points/{id}/transactions", tag = "charge points", params(("id" = String, Path, description = "Charge point id"), ListQuery), responses((status = 200, description = "`{charge_point_id, transactions}`: the charge point's transactions, newest start first, each as `GET /transactions/{id}` answers it (transactions are listed from the start-time index written at StartTransaction)", body = super::schemas::ChargePointTransactions), (status = 400, description = "Bad parameter, named in `error`", body = super::schemas::ErrorBody), (status = 404, description = "Never seen", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn of_charge_point(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = params::charge_point_id(&path)?;
    let filter = match query.state.as_deref().unwrap_or("all") {
        "active" => StateFilter::Active,
        "stopped" => StateFilter::Stopped,
        "all" => StateFilter::All,
        other => {
            return Err(ApiError::BadRequest(format!(
                "state must be active, stopped or all, not {other:?}"
            )))
        }
    };
    let limit = params::limit(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let mut listed = Vec::new();
    let mut skip = 0;
    // Filtering by state can skip rows, so read the index in pages until `limit` rows match
    // or the index ends; without a filter the first page is the answer.
    let page = if filter == StateFilter::All {
        limit
    } else {
        (limit * 2).max(100)
    };
    loop {
        let ids = reads::transaction_ids_newest_first(&state.pool, id.as_str(), skip, page).await?;
        skip += ids.len();
        let records = reads::transactions(&state.pool, &ids).await?;
        for (txn, record) in ids.iter().zip(records) {
            // An indexed id without a record: nothing to show (the record was deleted by hand).
            let Some(record) = record else { continue };
            let stopped = is_stopped(&record);
            let wanted = match filter {
                StateFilter::All => true,
                StateFilter::Active => !stopped,
                StateFilter::Stopped => stopped,
            };
            if wanted {
                listed.push(document(*txn, &record));
                if listed.len() == limit {
                    break;
                }
            }
        }
        if listed.len() == limit || ids.len() < page {
            break;
        }
    }
    // A charge point with indexed transactions has been seen; only an empty index needs a look.
    if skip == 0
        && reads::charge_point(&state.pool, id.as_str())
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "charge point {id} has never been seen"
        )));
    }
    Ok(HttpResponse::Ok().json(json!({
        "charge_point_id": id.as_str(),
        "transactions": listed,
    })))
}

/// The JSON document of one transaction, shared by both routes so a row of the list is exactly
/// what `GET /transactions/{id}` answers.
pub(super) fn document(id: i32, record: &TransactionRecord) -> Value {
    let text = |field: &str| record.get(field).cloned();
    let number = |field: &str| record.get(field).and_then(|v| v.parse::<i64>().ok());
    let meter_start = number("meter_start");
    let meter_stop = number("meter_stop");
    let energy_wh = match (meter_start, meter_stop) {
        (Some(start), Some(stop)) => json!(stop - start),
        _ => Value::Null,
    };
    let mut document = json!({
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
        "state": if is_stopped(record) { "stopped" } else { "active" },
        "energy_wh": energy_wh,
    });
    // Only on transactions a charge point named itself (OCPP 2.0.1), so 1.6 documents keep
    // exactly their fields.
    if let (Some(station_id), Some(fields)) =
        (text("station_transaction_id"), document.as_object_mut())
    {
        fields.insert("station_transaction_id".into(), Value::String(station_id));
    }
    document
}

/// Whether StopTransaction has been stored: the one test of `state`, shared by the document
/// and the list's filter so they cannot disagree.
pub(super) fn is_stopped(record: &TransactionRecord) -> bool {
    record
        .get("meter_stop")
        .is_some_and(|v| v.parse::<i64>().is_ok())
}
