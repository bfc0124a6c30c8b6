//! Parsers of path and query parameters shared by the routes, so that a bad charge point id,
//! time, measurand or phase gets the same 400 message everywhere.

use chrono::{DateTime, Duration, Utc};

use super::ApiError;
use actors::id::ChargePointId;
use actors::sample::{Measurand, Phase};
use actors::store::aggregates::Period;

/// Longest range of one roll-up query, per period: a month of hours, a bit more than a year of
/// days (the per-charge-point aggregates, the fleet's and an idTag's energy).
pub const MAX_HOURLY_RANGE_DAYS: i64 = 31;
/// See [`MAX_HOURLY_RANGE_DAYS`].
pub const MAX_DAILY_RANGE_DAYS: i64 = 400;

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

/// The `period` of a roll-up query: `hour` (default) or `day`.
pub fn period(text: Option<&str>) -> Result<Period, ApiError> {
    match text {
        None => Ok(Period::Hour),
        Some(p) => Period::parse(p).ok_or_else(|| {
            ApiError::BadRequest(format!("period {p:?} must be \"hour\" or \"day\""))
        }),
    }
}

/// `from` and `to` of a query: RFC 3339, `to` defaulting to now and `from` to `default_span`
/// before it; `from` must come first and the range span at most `max_days` (the message names
/// `what` the limit is for).
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    default_span: Duration,
    max_days: i64,
    what: &str,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = match to {
        Some(t) => time("to", t)?,
        None => Utc::now(),
    };
    let from = match from {
        Some(f) => time("from", f)?,
        None => to - default_span,
    };
    if from >= to {
        return Err(ApiError::BadRequest("from must be before to".into()));
    }
    if to - from > Duration::days(max_days) {
        return Err(ApiError::BadRequest(format!(
            "from..to may span at most {max_days} days for {what}"
        )));
    }
    Ok((from, to))
}

/// The range of a roll-up query of `period`: 24 hours or 30 days by default, at most
/// [`MAX_HOURLY_RANGE_DAYS`] or [`MAX_DAILY_RANGE_DAYS`].
pub fn rollup_range(
    period: Period,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (default_span, max_days) = match period {
        Period::Hour => (Duration::hours(24), MAX_HOURLY_RANGE_DAYS),
        Period::Day => (Duration::days(30), MAX_DAILY_RANGE_DAYS),
    };
    let what = format!("period {}", period.as_str());
    range(from, to, default_span, max_days, &what)
}

/// A `limit`: an integer from 1 to `max`, `default` when absent; read from text so that a bad
/// value gets a 400 naming `limit` rather than a bare parser message.
pub fn limit(text: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match text {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "limit must be an integer between 1 and {max}, not {text:?}"
            ))),
        },
    }
}
