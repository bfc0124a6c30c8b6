//! OCPP `dateTime` fields: read leniently, written strictly.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// A timestamp as read from a charge point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// The instant, in UTC.
    pub at: DateTime<Utc>,
    /// The text had no UTC offset and was read as UTC; counted so operators can spot chargers
    /// whose clocks may be local time.
    pub naive: bool,
}

/// Reads RFC 3339 (any offset, also `+0200`), or a date-time without offset read as UTC.
/// `None` when the text is no date-time at all.
pub(crate) fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(Parsed {
            at: at.with_timezone(&Utc),
            naive: false,
        });
    }
    if let Ok(at) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(Parsed {
            at: at.with_timezone(&Utc),
            naive: false,
        });
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| Parsed {
            at: naive.and_utc(),
            naive: true,
        })
}

/// RFC 3339 in UTC with a `Z`, millisecond precision: the form every charger firmware parses.
pub(crate) fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_converted_to_utc() {
        let p = parse("2024-05-01T12:00:00+02:00").unwrap();
        assert_eq!(format(p.at), "2024-05-01T10:00:00.000Z");
        assert!(!p.naive);
        let p = parse("2024-05-01T12:00:00+0200").unwrap();
        assert_eq!(format(p.at), "2024-05-01T10:00:00.000Z");
    }

    #[test]
    fn naive_times_are_read_as_utc() {
        let p = parse("2024-05-01T10:00:00").unwrap();
        assert!(p.naive);
        assert_eq!(format(p.at), "2024-05-01T10:00:00.000Z");
        let p = parse("2024-05-01T10:00:00.123").unwrap();
        assert_eq!(format(p.at), "2024-05-01T10:00:00.123Z");
    }

    #[test]
    fn garbage_is_not_a_time() {
        assert!(parse("yesterday").is_none());
        assert!(parse("").is_none());
        assert!(parse("2024-13-01T10:00:00Z").is_none());
    }
}
