//! Charge point identities, validated once at the edge so that every later use (Redis key names,
//! log lines, API paths) can trust them.

use std::fmt;
use std::sync::Arc;

/// Longest id accepted. OCPP 1.6 has no limit of its own; 48 leaves room for the serial-number
/// style ids operators use while keeping keys short.
pub const MAX_ID_LEN: usize = 48;

/// Why an id was refused; the message is shown to whoever sent it (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// Empty, or longer than [`MAX_ID_LEN`] characters.
    #[error("a charge point id must be 1 to {MAX_ID_LEN} characters long")]
    Length,
    /// Holds a character that would break key names or paths.
    #[error("a charge point id may not contain {0:?} (allowed: printable characters except {{ }} / and space)")]
    Character(char),
}

/// A charge point id that is known to be safe to embed in a Redis key (no `{` `}`, which would
/// break the Cluster hash tag), a URL path (no `/`) and a log line (printable only).
///
/// Cheap to clone: ids are copied into every sample batch and message.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChargePointId(Arc<str>);

impl ChargePointId {
    /// Validates an already percent-decoded id.
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let len = text.chars().count();
        if len == 0 || len > MAX_ID_LEN {
            return Err(InvalidId::Length);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '{' | '}' | '/'))
        {
            return Err(InvalidId::Character(bad));
        }
        Ok(ChargePointId(Arc::from(text)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChargePointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChargePointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in [
            "CP1",
            "DE*ABC*E123",
            "charger-01.site_a",
            "Ladesäule-7",
            &"x".repeat(48),
        ] {
            assert_eq!(
                ChargePointId::parse(id).map(|i| i.to_string()).as_deref(),
                Ok(id)
            );
        }
    }

    #[test]
    fn refuses_ids_that_would_break_keys_or_paths() {
        assert_eq!(ChargePointId::parse(""), Err(InvalidId::Length));
        assert_eq!(
            ChargePointId::parse(&"x".repeat(49)),
            Err(InvalidId::Length)
        );
        assert_eq!(ChargePointId::parse("a{b"), Err(InvalidId::Character('{')));
        assert_eq!(ChargePointId::parse("a}b"), Err(InvalidId::Character('}')));
        assert_eq!(ChargePointId::parse("a/b"), Err(InvalidId::Character('/')));
        assert_eq!(ChargePointId::parse("a b"), Err(InvalidId::Character(' ')));
        assert_eq!(
            ChargePointId::parse("a\nb"),
            Err(InvalidId::Character('\n'))
        );
    }
}
