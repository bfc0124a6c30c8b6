//! The checks the OCPP 1.6 schemas impose beyond JSON types (enums, ranges, lengths, formats),
//! done after typed deserialisation so each failure names its field.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::PayloadError;
use super::timestamp;

/// Deserialises a CALL payload into its typed request, with the failing field's path on error.
///
/// Plain serde first: tracking the path costs on every payload (it showed in the profile) and
/// is only needed to name the field of a failure, so a failing payload is decoded a second time
/// with `serde_path_to_error`. Decoding is deterministic, so the error is the one a single
/// tracked pass would give.
pub(crate) fn parse<'a, T: Deserialize<'a>>(payload: &'a RawValue) -> Result<T, PayloadError> {
    let text = payload.get().trim_start();
    if !text.starts_with('{') {
        return Err(PayloadError::NotAnObject {
            found: json_kind(text),
        });
    }
    if let Ok(value) = T::deserialize(&mut serde_json::Deserializer::from_str(text)) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(PayloadError::from_serde)
}

/// Names the JSON type a (valid) JSON text starts with.
fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(_) => "a number",
        None => "nothing",
    }
}

/// Enforces a schema `maxLength` (counted in characters, as JSON Schema does).
pub(crate) fn max_len(path: &str, value: &str, max: usize) -> Result<(), PayloadError> {
    let len = value.chars().count();
    if len > max {
        return Err(PayloadError::invalid(
            path,
            format!("{len} characters, at most {max} allowed"),
        ));
    }
    Ok(())
}

/// [`max_len`] for optional fields.
pub(crate) fn max_len_opt(path: &str, value: Option<&str>, max: usize) -> Result<(), PayloadError> {
    value.map_or(Ok(()), |v| max_len(path, v, max))
}

/// Reads an OCPP enumeration value, tolerating stray whitespace, and returns its canonical
/// spelling.
pub(crate) fn one_of(
    path: &str,
    value: &str,
    allowed: &[&'static str],
) -> Result<&'static str, PayloadError> {
    let trimmed = value.trim();
    allowed
        .iter()
        .copied()
        .find(|a| *a == trimmed)
        .ok_or_else(|| PayloadError::invalid(path, format!("{value:?} is not one of {allowed:?}")))
}

/// Checks an integer against an inclusive lower bound and the `u32` domain type.
pub(crate) fn connector_id(path: &str, value: i64, min: i64) -> Result<u32, PayloadError> {
    if value < min {
        return Err(PayloadError::invalid(
            path,
            format!("{value} is out of range (must be >= {min})"),
        ));
    }
    u32::try_from(value).map_err(|_| PayloadError::invalid(path, format!("{value} is too large")))
}

/// Checks that an OCPP `integer` fits the 32 bits the spec's implementations use.
pub(crate) fn int32(path: &str, value: i64) -> Result<i32, PayloadError> {
    i32::try_from(value)
        .map_err(|_| PayloadError::invalid(path, format!("{value} does not fit a 32-bit integer")))
}

/// Reads a `dateTime` field; returns the instant and whether it lacked a UTC offset.
pub(crate) fn date_time(path: &str, value: &str) -> Result<(DateTime<Utc>, bool), PayloadError> {
    timestamp::parse(value)
        .map(|p| (p.at, p.naive))
        .ok_or_else(|| {
            PayloadError::invalid(path, format!("{value:?} is not an RFC 3339 date-time"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_are_trimmed_and_canonical() {
        assert_eq!(one_of("s", " Charging\n", &["Charging"]), Ok("Charging"));
        let err = one_of("status", "Flying", &["Charging"]).unwrap_err();
        assert!(err.description().starts_with("status: \"Flying\""));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(max_len("idTag", "ééééé", 5).is_ok());
        assert!(max_len("idTag", "abcdef", 5).is_err());
    }

    #[test]
    fn ranges_are_checked() {
        assert!(connector_id("c", -1, 0).is_err());
        assert!(connector_id("c", 0, 1).is_err());
        assert_eq!(connector_id("c", 3, 1), Ok(3));
        assert!(connector_id("c", i64::MAX, 0).is_err());
        assert!(int32("t", 1 << 40).is_err());
    }
}
