//! Remote commands to a connected charge point (`/api/v1/charge-points/{id}/trigger` and
//! `/configuration`) and its metering profile (`/metering`). A command is a server-initiated
//! OCPP call queued by the charge point's actor; the answer is the charge point's, with 409
//! when it is not connected, 504 when it does not answer in `ocpp.call_timeout_secs`, and 502
//! when it answers with a CALLERROR (`error_code`) or with something the schema forbids. A
//! charge point held by another instance is called through that instance (`actors::fleet`).
//!
//! The routes speak OCPP 1.6 (TriggerMessage, GetConfiguration, ChangeConfiguration, 1.6
//! configuration keys) to every charge point; a 2.0.1 station's session sends them as
//! TriggerMessage, GetVariables and SetVariables and answers in the same 1.6 form
//! (`ocpp::v201::outgoing`, docs/ocpp201-calls.md).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::writeback::{self, Document};
use super::{error_response, ApiState};
use actors::id::ChargePointId;
use actors::metering::{MeteringOverride, MeteringProfile};
use actors::sample::Measurand;
use actors::server_call::{Call, CallError, CallReply, ServerCall, TriggerKind};
use actors::store::metering as store;
use actors::store::reads::ReadError;

/// What the command and metering routes need beyond [`ApiState`].
#[derive(Clone)]
pub struct CommandsState {
    /// `[ocpp.metering]` as configured, shown by `GET …/metering` and merged with overrides.
    pub metering_defaults: Arc<MeteringProfile>,
    /// `ocpp.metering.enabled`.
    pub metering_enabled: bool,
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        trigger,
        get_configuration,
        change_configuration,
        get_metering,
        put_metering
    ),
    components(schemas(CallErrorBody, StatusBody, ConfigurationBody, MeteringBody))
)]
pub(super) struct Doc;

/// A 502 for a CALLERROR: the reason and the charge point's OCPP error code.
#[derive(utoipa::ToSchema)]
pub struct CallErrorBody {
    /// Why the call failed.
    pub error: String,
    /// The charge point's OCPP-J error code (absent when its answer broke the schema).
    pub error_code: Option<String>,
}

/// The charge point's answer status.
#[derive(utoipa::ToSchema)]
pub struct StatusBody {
    /// TriggerMessage: Accepted, Rejected, NotImplemented; ChangeConfiguration: Accepted,
    /// Rejected, RebootRequired, NotSupported.
    pub status: String,
}

/// GetConfiguration.conf, with the OCPP field names.
#[derive(utoipa::ToSchema)]
#[allow(non_snake_case)] // the OCPP spelling is the contract
pub struct ConfigurationBody {
    /// `{"key", "readonly", "value"}` of every known key asked for.
    pub configurationKey: Vec<serde_json::Value>,
    /// Keys asked for that the charge point does not know.
    pub unknownKey: Vec<String>,
}

/// The metering profile of a charge point.
#[derive(utoipa::ToSchema)]
pub struct MeteringBody {
    /// The charge point.
    pub charge_point_id: String,
    /// `ocpp.metering.enabled`.
    pub enabled: bool,
    /// The profile in force: `[ocpp.metering]` with the override applied.
    pub profile: serde_json::Value,
    /// The override (fields of `[ocpp.metering]`).
    pub r#override: serde_json::Value,
    /// GET only: the configuration read at the last boot, or null.
    pub reported: Option<serde_json::Value>,
    /// GET only: refused keys -> `{"value", "status"}`.
    pub refused: Option<serde_json::Value>,
}

/// Registers the command and metering routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/charge-points/{id}/trigger", web::post().to(trigger))
        .route(
            "/charge-points/{id}/configuration",
            web::get().to(get_configuration),
        )
        .route(
            "/charge-points/{id}/configuration",
            web::put().to(change_configuration),
        )
        .route("/charge-points/{id}/metering", web::get().to(get_metering))
        .route("/charge-points/{id}/metering", web::put().to(put_metering));
}

/// Errors of the command routes, each with its status.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad id or body (400).
    #[error("{0}")]
    BadRequest(String),
    /// The call failed (409, 504, 502, 503).
    #[error(transparent)]
    Call(#[from] CallError),
    /// Redis could not answer (503).
    #[error(transparent)]
    Store(#[from] ReadError),
}

impl ResponseError for CommandError {
    fn status_code(&self) -> StatusCode {
        match self {
            CommandError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CommandError::Call(CallError::NotConnected) => StatusCode::CONFLICT,
            CommandError::Call(CallError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            CommandError::Call(CallError::Refused { .. } | CallError::BadResponse(_)) => {
                StatusCode::BAD_GATEWAY
            }
            CommandError::Call(CallError::Busy) | CommandError::Store(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            CommandError::Call(CallError::Refused { code, .. }) => {
                HttpResponse::build(self.status_code()).json(json!({
                    "error": self.to_string(),
                    "error_code": code,
                }))
            }
            _ => error_response(self.status_code(), self.to_string()),
        }
    }
}

fn parse_id(raw: &str) -> Result<ChargePointId, CommandError> {
    ChargePointId::parse(raw).map_err(|e| CommandError::BadRequest(e.to_string()))
}

/// Sends `call` to the connected charge point `id` and waits for its answer: through its
/// actor when its session is here, through the instance holding it otherwise (the same
/// answers: 409 when no instance holds it, 504 when the owner does not answer in time, the
/// owner's 502/503 passed through).
async fn call(
    state: &ApiState,
    id: &ChargePointId,
    call: ServerCall,
) -> Result<CallReply, CommandError> {
    let Some(connection) = state.registry.get(id) else {
        return Ok(state.fleet.remote_call(id, call).await??);
    };
    let reply = connection
        .actor
        .send(Call(call))
        .await
        .map_err(|_| CallError::NotConnected)??;
    Ok(reply)
}

/// The answer did not fit the call (cannot happen: the edge decodes by the call's action).
fn mismatch() -> CommandError {
    CommandError::Call(CallError::BadResponse("answer of another action".into()))
}

/// Body of `POST …/trigger`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    /// MeterValues, StatusNotification, Heartbeat or BootNotification.
    #[schema(value_type = String)]
    message: TriggerKind,
    /// The connector (1 or more); absent: the whole charge point.
    connector_id: Option<u32>,
}

#[utoipa::path(post, path = "/charge-points/{id}/trigger", tag = "commands", params(("id" = String, Path, description = "Charge point id")), request_body = TriggerBody, responses((status = 200, description = "The charge point's TriggerMessage status", body = StatusBody), (status = 400, description = "Bad id or body, named in `error`", body = super::schemas::ErrorBody), (status = 409, description = "The charge point is not connected", body = super::schemas::ErrorBody), (status = 502, description = "The charge point answered with a CALLERROR (`error_code`) or an answer the schema of its OCPP version (1.6 or 2.0.1) forbids", body = CallErrorBody), (status = 503, description = "Too many calls already wait for this charge point", body = super::schemas::ErrorBody), (status = 504, description = "No answer within `ocpp.call_timeout_secs`", body = super::schemas::ErrorBody)))]
async fn trigger(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Json<TriggerBody>,
) -> Result<HttpResponse, CommandError> {
    let id = parse_id(&path)?;
    if body.connector_id == Some(0) {
        return Err(CommandError::BadRequest(
            "connector_id must be 1 or more; leave it out for the whole charge point".into(),
        ));
    }
    let request = ServerCall::Trigger {
        message: body.message,
        connector_id: body.connector_id,
    };
    match call(&state, &id, request).await? {
        CallReply::Trigger { status } => Ok(HttpResponse::Ok().json(json!({ "status": status }))),
        _ => Err(mismatch()),
    }
}

/// Query of `GET …/configuration`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct KeysQuery {
    /// Comma-separated keys; absent: every key (on a 2.0.1 station: every variable of the
    /// mapping table, docs/ocpp201-calls.md).
    key: Option<String>,
}

#[utoipa::path(get, path = "/charge-points/{id}/configuration", tag = "commands", params(("id" = String, Path, description = "Charge point id"), KeysQuery), responses((status = 200, description = "The charge point's GetConfiguration answer", body = ConfigurationBody), (status = 400, description = "Bad id or body, named in `error`", body = super::schemas::ErrorBody), (status = 409, description = "The charge point is not connected", body = super::schemas::ErrorBody), (status = 502, description = "The charge point answered with a CALLERROR (`error_code`) or an answer the schema of its OCPP version (1.6 or 2.0.1) forbids", body = CallErrorBody), (status = 503, description = "Too many calls already wait for this charge point", body = super::schemas::ErrorBody), (status = 504, description = "No answer within `ocpp.call_timeout_secs`", body = super::schemas::ErrorBody)))]
async fn get_configuration(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<KeysQuery>,
) -> Result<HttpResponse, CommandError> {
    let id = parse_id(&path)?;
    let keys: Vec<String> = query
        .key
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(long) = keys.iter().find(|k| k.chars().count() > 50) {
        return Err(CommandError::BadRequest(format!(
            "key {long:?} is longer than 50 characters"
        )));
    }
    match call(&state, &id, ServerCall::GetConfiguration { keys }).await? {
        CallReply::Configuration { known, unknown } => Ok(HttpResponse::Ok().json(json!({
            "configurationKey": known,
            "unknownKey": unknown,
        }))),
        _ => Err(mismatch()),
    }
}

/// Body of `PUT …/configuration`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    /// The configuration key (1 to 50 characters); on a 2.0.1 station a 1.6 key of the
    /// mapping table or `Component.Variable` (docs/ocpp201-calls.md).
    key: String,
    /// Its new value (at most 500 characters).
    value: String,
}

#[utoipa::path(put, path = "/charge-points/{id}/configuration", tag = "commands", params(("id" = String, Path, description = "Charge point id")), request_body = ChangeBody, responses((status = 200, description = "The charge point's ChangeConfiguration status", body = StatusBody), (status = 400, description = "Bad id or body, named in `error`", body = super::schemas::ErrorBody), (status = 409, description = "The charge point is not connected", body = super::schemas::ErrorBody), (status = 502, description = "The charge point answered with a CALLERROR (`error_code`) or an answer the schema of its OCPP version (1.6 or 2.0.1) forbids", body = CallErrorBody), (status = 503, description = "Too many calls already wait for this charge point", body = super::schemas::ErrorBody), (status = 504, description = "No answer within `ocpp.call_timeout_secs`", body = super::schemas::ErrorBody)))]
async fn change_configuration(
    state: web::Data<ApiState>,
    path: web::Path<String>,
    body: web::Json<ChangeBody>,
) -> Result<HttpResponse, CommandError> {
    let id = parse_id(&path)?;
    let ChangeBody { key, value } = body.into_inner();
    if key.is_empty() || key.chars().count() > 50 {
        return Err(CommandError::BadRequest(
            "key must be 1 to 50 characters".into(),
        ));
    }
    if value.chars().count() > 500 {
        return Err(CommandError::BadRequest(
            "value must be at most 500 characters".into(),
        ));
    }
    match call(&state, &id, ServerCall::ChangeConfiguration { key, value }).await? {
        CallReply::Change { status } => Ok(HttpResponse::Ok().json(json!({ "status": status }))),
        _ => Err(mismatch()),
    }
}

#[utoipa::path(get, path = "/charge-points/{id}/metering", tag = "commands", params(("id" = String, Path, description = "Charge point id")), responses((status = 200, description = "Profile in force, override, reported configuration, refused keys", body = MeteringBody), (status = 400, description = "Bad id or body, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn get_metering(
    state: web::Data<ApiState>,
    commands: web::Data<CommandsState>,
    path: web::Path<String>,
) -> Result<HttpResponse, CommandError> {
    let id = parse_id(&path)?;
    let overrides = store::read_override(&state.pool, id.as_str()).await?;
    let effective = match &overrides {
        Some(o) => commands.metering_defaults.with_override(o),
        None => (*commands.metering_defaults).clone(),
    };
    let configuration = store::read_configuration(&state.pool, id.as_str()).await?;
    let refused = store::read_refused(&state.pool, id.as_str()).await?;
    Ok(HttpResponse::Ok().json(json!({
        "charge_point_id": id.as_str(),
        "enabled": commands.metering_enabled,
        "profile": effective,
        "override": overrides.unwrap_or_default(),
        "reported": configuration,
        "refused": refused,
    })))
}

/// Fields of `GET …/metering` that a `PUT` cannot set: sent back, they are ignored.
const METERING_READ_ONLY: &[&str] = &[
    "charge_point_id",
    "enabled",
    "profile",
    "reported",
    "refused",
];

/// Reads a `PUT …/metering` body: the override's fields, either flat (the documented body) or
/// as the `GET` document gives them, nested under `"override"` beside read-only fields, so a
/// client can read the document, edit the override and write it back. Both at once is refused
/// (which one was meant cannot be told), as is any unknown field.
fn parse_metering(body: &[u8]) -> Result<MeteringOverride, String> {
    const WHAT: &str = "metering override";
    let mut document = Document::parse(body, WHAT)?;
    document.ignore(METERING_READ_ONLY);
    let Some(nested) = document.take("override") else {
        return document.read();
    };
    if !document.is_empty() {
        return Err(format!(
            "invalid {WHAT}: {} beside \"override\": send the override's fields either flat or under \"override\"",
            document.field_names().join(", ")
        ));
    }
    match nested {
        Value::Null => Ok(MeteringOverride::default()),
        nested => writeback::read_value(nested, "metering override (under \"override\")"),
    }
}

#[utoipa::path(put, path = "/charge-points/{id}/metering", tag = "commands", params(("id" = String, Path, description = "Charge point id")), request_body(content = serde_json::Value, description = "Any of `sample_interval_secs`, `sampled_data`, `clock_aligned_interval_secs`, `aligned_data`, `stop_txn_sampled_data`; flat, or nested under `override` as in the document `GET` gives (whose read-only fields are ignored)"), responses((status = 200, description = "The new profile", body = MeteringBody), (status = 400, description = "Bad id or body, named in `error`", body = super::schemas::ErrorBody), (status = 503, description = "Redis cannot answer", body = super::schemas::ErrorBody)))]
async fn put_metering(
    state: web::Data<ApiState>,
    commands: web::Data<CommandsState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, CommandError> {
    let id = parse_id(&path)?;
    let o = parse_metering(&body).map_err(CommandError::BadRequest)?;
    let lists = [
        ("sampled_data", &o.sampled_data),
        ("aligned_data", &o.aligned_data),
        ("stop_txn_sampled_data", &o.stop_txn_sampled_data),
    ];
    for (name, list) in lists {
        if let Some(bad) = list
            .iter()
            .flatten()
            .find(|m| Measurand::parse(m).is_none())
        {
            return Err(CommandError::BadRequest(format!(
                "{name}: {bad:?} is not an OCPP 1.6 measurand"
            )));
        }
    }
    store::write_override(&state.pool, id.as_str(), &o).await?;
    Ok(HttpResponse::Ok().json(json!({
        "charge_point_id": id.as_str(),
        "enabled": commands.metering_enabled,
        "profile": commands.metering_defaults.with_override(&o),
        "override": o,
    })))
}
