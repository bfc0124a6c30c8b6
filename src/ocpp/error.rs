//! OCPP-J error codes and the errors the codec reports.
//!
//! Every decision about which OCPP-J error code a decoding failure deserves is made here, so the
//! session loop and the payload decoders never pick codes themselves and cannot disagree.

use std::fmt;

/// The OCPP-J 1.6 CALLERROR codes (OCPP-J 1.6 section 4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The action is not known to the receiver.
    NotImplemented,
    /// The action is known but not supported by the receiver.
    NotSupported,
    /// The receiver failed while handling an otherwise valid request.
    InternalError,
    /// The payload is incomplete or the message is not a valid OCPP-J frame.
    ProtocolError,
    /// A security issue prevented handling the request.
    SecurityError,
    /// The payload is syntactically wrong or not conformant to the PDU structure.
    FormationViolation,
    /// A field holds a value its type allows but its constraints (enum, range, length) do not.
    PropertyConstraintViolation,
    /// A required field is missing (or occurs too often); the spec's own spelling.
    OccurenceConstraintViolation,
    /// A field has the wrong JSON type (for example a string where an integer belongs).
    TypeConstraintViolation,
    /// Any other error.
    GenericError,
}

impl ErrorCode {
    /// Every code, in spec order; lets tests enumerate the set.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::NotImplemented,
        ErrorCode::NotSupported,
        ErrorCode::InternalError,
        ErrorCode::ProtocolError,
        ErrorCode::SecurityError,
        ErrorCode::FormationViolation,
        ErrorCode::PropertyConstraintViolation,
        ErrorCode::OccurenceConstraintViolation,
        ErrorCode::TypeConstraintViolation,
        ErrorCode::GenericError,
    ];

    /// The wire spelling (note `OccurenceConstraintViolation`, misspelt by the spec itself).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ProtocolError => "ProtocolError",
            ErrorCode::SecurityError => "SecurityError",
            ErrorCode::FormationViolation => "FormationViolation",
            ErrorCode::PropertyConstraintViolation => "PropertyConstraintViolation",
            ErrorCode::OccurenceConstraintViolation => "OccurenceConstraintViolation",
            ErrorCode::TypeConstraintViolation => "TypeConstraintViolation",
            ErrorCode::GenericError => "GenericError",
        }
    }

    /// Reads a code from a charge point's CALLERROR; `None` for codes outside OCPP-J 1.6.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == text.trim())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that could not be read as an OCPP-J frame. It carries the uniqueId when it could be
/// recovered (`"-1"` otherwise) so the session can still answer with a CALLERROR.
///
/// The session should only answer when the broken message was (or may have been) a CALL: a
/// CALLERROR in reply to a broken CALLRESULT could make both ends loop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is not well-formed JSON.
    #[error("malformed JSON: {detail}")]
    Malformed {
        /// Recovered uniqueId, or `"-1"`.
        unique_id: String,
        /// What the JSON parser said.
        detail: String,
    },
    /// Well-formed JSON that is not an OCPP-J frame (not an array, wrong element count or
    /// types).
    #[error("not an OCPP-J frame: {detail}")]
    NotAFrame {
        /// Recovered uniqueId, or `"-1"`.
        unique_id: String,
        /// Which rule the message broke.
        detail: String,
    },
    /// A frame whose MessageTypeId is an integer but not one of CALL, CALLRESULT, CALLERROR.
    /// Kept apart from [`FrameError::NotAFrame`] because OCPP-J 2.0.1 answers it with its own
    /// code (`MessageTypeNotSupported`); 1.6 renders it exactly as before.
    #[error("not an OCPP-J frame: unknown MessageTypeId {type_id}")]
    UnknownMessageType {
        /// Recovered uniqueId, or `"-1"`.
        unique_id: String,
        /// The MessageTypeId received.
        type_id: u8,
    },
}

impl FrameError {
    /// The uniqueId to answer with.
    pub fn unique_id(&self) -> &str {
        match self {
            FrameError::Malformed { unique_id, .. }
            | FrameError::NotAFrame { unique_id, .. }
            | FrameError::UnknownMessageType { unique_id, .. } => unique_id,
        }
    }

    /// The OCPP-J error code for the CALLERROR.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::Malformed { .. } => ErrorCode::FormationViolation,
            FrameError::NotAFrame { .. } | FrameError::UnknownMessageType { .. } => {
                ErrorCode::ProtocolError
            }
        }
    }

    /// The errorDescription for the CALLERROR.
    pub fn description(&self) -> String {
        self.to_string()
    }
}

/// A CALL payload that could not be turned into a domain request. Paths use the
/// `meterValue[0].sampledValue[2].value` form so the charge point's vendor can find the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The action is not an OCPP 1.6 action at all.
    #[error("unknown action {action:?}")]
    UnknownAction {
        /// The action as received.
        action: String,
    },
    /// An OCPP 1.6 action a charge point must not send to a central system, or one this server
    /// does not handle (the security extension).
    #[error("action {action:?} is not supported by this central system")]
    UnsupportedAction {
        /// The action as received.
        action: String,
    },
    /// The payload is not a JSON object.
    #[error("payload must be a JSON object, got {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// The payload could not be read at all (unexpected end, bad number literal).
    #[error("{path}: {detail}")]
    Malformed {
        /// Where the parser stopped.
        path: String,
        /// What the parser said.
        detail: String,
    },
    /// A required field is absent.
    #[error("{path}: required field is missing")]
    Missing {
        /// The missing field.
        path: String,
    },
    /// A field has the wrong JSON type.
    #[error("{path}: {detail}")]
    WrongType {
        /// The field.
        path: String,
        /// Expected and found types.
        detail: String,
    },
    /// A field's value is outside its enum, range, length or format.
    #[error("{path}: {reason}")]
    Invalid {
        /// The field.
        path: String,
        /// Why the value is not acceptable.
        reason: String,
    },
}

impl PayloadError {
    /// The OCPP-J error code for the CALLERROR.
    pub fn code(&self) -> ErrorCode {
        match self {
            PayloadError::UnknownAction { .. } => ErrorCode::NotImplemented,
            PayloadError::UnsupportedAction { .. } => ErrorCode::NotSupported,
            PayloadError::NotAnObject { .. } | PayloadError::Malformed { .. } => {
                ErrorCode::FormationViolation
            }
            PayloadError::Missing { .. } => ErrorCode::OccurenceConstraintViolation,
            PayloadError::WrongType { .. } => ErrorCode::TypeConstraintViolation,
            PayloadError::Invalid { .. } => ErrorCode::PropertyConstraintViolation,
        }
    }

    /// The errorDescription for the CALLERROR.
    pub fn description(&self) -> String {
        self.to_string()
    }

    /// Shorthand for the value-level failures found after deserialisation.
    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        PayloadError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Classifies a serde failure. serde_json only tells syntax from data errors, so data errors
    /// are told apart by serde's stable message prefixes ("missing field", "invalid type").
    pub(crate) fn from_serde(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = without_position(&inner.to_string()).to_owned();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let missing = message
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.strip_suffix('`'));
                if let Some(field) = missing {
                    PayloadError::Missing {
                        path: join_path(&path, field),
                    }
                } else if message.starts_with("invalid type") {
                    PayloadError::WrongType {
                        path,
                        detail: message,
                    }
                } else {
                    PayloadError::Invalid {
                        path,
                        reason: message,
                    }
                }
            }
            _ => PayloadError::Malformed {
                path,
                detail: message,
            },
        }
    }
}

/// serde_json appends " at line L column C", which means nothing to a charge point's vendor
/// once the field path is known.
fn without_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

/// serde_path_to_error renders the root as "."; a field of the root is just its name.
fn join_path(parent: &str, field: &str) -> String {
    if parent.is_empty() || parent == "." {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_the_spec_spelling() {
        assert_eq!(ErrorCode::ALL.len(), 10);
        assert_eq!(
            ErrorCode::OccurenceConstraintViolation.as_str(),
            "OccurenceConstraintViolation"
        );
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
        }
        assert_eq!(ErrorCode::parse("Nope"), None);
    }

    #[test]
    fn positions_are_stripped_and_paths_joined() {
        assert_eq!(without_position("bad at line 1 column 5"), "bad");
        assert_eq!(join_path(".", "idTag"), "idTag");
        assert_eq!(
            join_path("meterValue[0]", "timestamp"),
            "meterValue[0].timestamp"
        );
    }

    #[test]
    fn frame_errors_carry_their_unique_id() {
        let err = FrameError::NotAFrame {
            unique_id: "42".into(),
            detail: "x".into(),
        };
        assert_eq!(err.unique_id(), "42");
        assert_eq!(err.code(), ErrorCode::ProtocolError);
    }
}
