//! Parsers of path and query parameters shared by the routes, so that a bad charge point id,
//! time, measurand or phase gets the same 400 message everywhere.

use chrono::{DateTime, Utc};

use super::ApiError;
use actors::id::ChargePointId;
use actors::sample::{Measurand, Phase};

/// A charge point id from the path.
pub fn charge_point_id(raw: &str) -> Result<ChargePointId, ApiError> {
    ChargePointId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// An RFC 3339 time from the query parameter `name`.
pub fn time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::BadRequest(format!("{name} must be an RFC 3339 timestamp: {e}")))
}

/// An optional `measurand` filter.
pub fn measurand(text: Option<&str>) -> Result<Option<Measurand>, ApiError> {
    text.map(|m| {
        Measurand::parse(m).ok_or_else(|| {
            ApiError::BadRequest(format!("measurand {m:?} is not an OCPP 1.6 measurand"))
        })
    })
    .transpose()
}

/// An optional `phase` filter.
pub fn phase(text: Option<&str>) -> Result<Option<Phase>, ApiError> {
    text.map(|p| {
        Phase::parse(p)
            .ok_or_else(|| ApiError::BadRequest(format!("phase {p:?} is not an OCPP 1.6 phase")))
    })
    .transpose()
}
