//! The OCPP-J envelope (OCPP-J 1.6 section 4): CALL, CALLRESULT and CALLERROR arrays.
//!
//! Payloads are kept as borrowed [`RawValue`]s: the envelope is checked without building a
//! JSON tree, and the payload is read once, straight into its typed request.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;

use super::error::{ErrorCode, FrameError};
use super::v16::text::Text;

/// MessageTypeId of a CALL.
pub const CALL: u8 = 2;
/// MessageTypeId of a CALLRESULT.
pub const CALL_RESULT: u8 = 3;
/// MessageTypeId of a CALLERROR.
pub const CALL_ERROR: u8 = 4;

/// The uniqueId to answer with when none can be recovered from a broken message.
pub const UNKNOWN_UNIQUE_ID: &str = "-1";

/// One decoded OCPP-J message, borrowing from the text it was read from.
#[derive(Debug, Clone)]
pub enum Frame<'a> {
    /// `[2, uniqueId, action, payload]`: a request.
    Call {
        /// Id the reply must carry.
        unique_id: Cow<'a, str>,
        /// The action name, e.g. "MeterValues".
        action: Cow<'a, str>,
        /// The request payload, still unparsed.
        payload: &'a RawValue,
    },
    /// `[3, uniqueId, payload]`: the answer to one of our CALLs.
    CallResult {
        /// Id of the CALL answered.
        unique_id: Cow<'a, str>,
        /// The confirmation payload, still unparsed.
        payload: &'a RawValue,
    },
    /// `[4, uniqueId, errorCode, errorDescription, errorDetails]`: one of our CALLs failed.
    CallError {
        /// Id of the CALL answered.
        unique_id: Cow<'a, str>,
        /// The error code as sent (see [`ErrorCode::parse`]).
        code: Cow<'a, str>,
        /// Free-form description.
        description: Cow<'a, str>,
        /// The errorDetails value, still unparsed.
        details: &'a RawValue,
    },
}

impl Frame<'_> {
    /// The uniqueId of any frame type.
    pub fn unique_id(&self) -> &str {
        match self {
            Frame::Call { unique_id, .. }
            | Frame::CallResult { unique_id, .. }
            | Frame::CallError { unique_id, .. } => unique_id,
        }
    }
}

/// Reads one WebSocket text message as an OCPP-J frame.
///
/// Broken JSON is a FormationViolation, well-formed JSON that is no frame a ProtocolError; both
/// carry the uniqueId when it can be recovered so the CALLERROR reaches the right request.
pub fn decode_frame(text: &str) -> Result<Frame<'_>, FrameError> {
    let parts: Vec<&RawValue> = match serde_json::from_str(text) {
        Ok(parts) => parts,
        Err(err) => return Err(not_an_array(text, err)),
    };
    let unique_id = parts.get(1).and_then(|raw| string(raw));
    let recovered = || unique_id.as_deref().unwrap_or(UNKNOWN_UNIQUE_ID).to_owned();
    let not_a_frame = |detail: String| FrameError::NotAFrame {
        unique_id: recovered(),
        detail,
    };
    let type_id = parts
        .first()
        .and_then(|raw| serde_json::from_str::<u8>(raw.get()).ok());
    let Some(type_id) = type_id else {
        return Err(not_a_frame("MessageTypeId must be 2, 3 or 4".to_owned()));
    };
    if !(CALL..=CALL_ERROR).contains(&type_id) {
        return Err(FrameError::UnknownMessageType {
            unique_id: recovered(),
            type_id,
        });
    }
    let Some(id) = unique_id.clone() else {
        return Err(not_a_frame("UniqueId must be a string".to_owned()));
    };
    match (type_id, parts.as_slice()) {
        (CALL, [_, _, action, payload]) => {
            let action =
                string(action).ok_or_else(|| not_a_frame("Action must be a string".to_owned()))?;
            Ok(Frame::Call {
                unique_id: id,
                action,
                payload,
            })
        }
        (CALL_RESULT, [_, _, payload]) => Ok(Frame::CallResult {
            unique_id: id,
            payload,
        }),
        (CALL_ERROR, [_, _, code, description, details]) => {
            let code =
                string(code).ok_or_else(|| not_a_frame("ErrorCode must be a string".to_owned()))?;
            let description = string(description)
                .ok_or_else(|| not_a_frame("ErrorDescription must be a string".to_owned()))?;
            Ok(Frame::CallError {
                unique_id: id,
                code,
                description,
                details,
            })
        }
        (_, parts) => {
            let expected = match type_id {
                CALL => 4,
                CALL_RESULT => 3,
                _ => 5,
            };
            Err(not_a_frame(format!(
                "MessageTypeId {type_id} needs {expected} elements, got {}",
                parts.len()
            )))
        }
    }
}

/// Tells broken JSON from JSON that is simply not an array (serde reports a non-array before
/// reading it through, so the text is checked again on this cold path).
fn not_an_array(text: &str, err: serde_json::Error) -> FrameError {
    let unique_id = scan_unique_id(text).unwrap_or_else(|| UNKNOWN_UNIQUE_ID.to_owned());
    if err.is_data() && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
        FrameError::NotAFrame {
            unique_id,
            detail: "an OCPP-J message must be a JSON array".to_owned(),
        }
    } else {
        FrameError::Malformed {
            unique_id,
            detail: err.to_string(),
        }
    }
}

/// A JSON string element, borrowed when it has no escapes.
fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Text<'_>>(raw.get())
        .ok()
        .map(|t| t.0)
}

/// Finds the second element of a (possibly broken) array when it is a complete JSON string, so
/// that even a truncated message gets a CALLERROR its sender can match.
fn scan_unique_id(text: &str) -> Option<String> {
    let rest = text.trim_start().strip_prefix('[')?;
    let rest = rest[rest.find(',')? + 1..].trim_start();
    let body = rest.strip_prefix('"')?;
    let mut escaped = false;
    for (i, byte) in body.bytes().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match byte {
            b'\\' => escaped = true,
            b'"' => return serde_json::from_str(rest.get(..i + 2)?).ok(),
            _ => {}
        }
    }
    None
}

/// Serialises a frame array, falling back to an InternalError CALLERROR if the payload cannot be
/// serialised (it never should: every payload here is a plain struct).
fn to_frame(unique_id: &str, frame: &impl Serialize) -> String {
    serde_json::to_string(frame).unwrap_or_else(|err| {
        log::error!("cannot serialise OCPP frame {unique_id}: {err}");
        encode_call_error(
            unique_id,
            ErrorCode::InternalError,
            "reply not serialisable",
        )
    })
}

/// `[3, uniqueId, payload]`.
pub fn encode_call_result(unique_id: &str, payload: &impl Serialize) -> String {
    to_frame(unique_id, &(CALL_RESULT, unique_id, payload))
}

/// `[4, uniqueId, errorCode, errorDescription, {}]`.
pub fn encode_call_error(unique_id: &str, code: ErrorCode, description: &str) -> String {
    encode_call_error_text(unique_id, code.as_str(), description)
}

/// [`encode_call_error`] with the code already spelled for the session's OCPP version (2.0.1
/// spells some codes differently and has codes 1.6 lacks; see `protocol.rs`).
pub fn encode_call_error_text(unique_id: &str, code: &str, description: &str) -> String {
    let details = serde_json::Map::new();
    serde_json::to_string(&(CALL_ERROR, unique_id, code, description, details))
        .unwrap_or_else(|_| format!("[4,\"{UNKNOWN_UNIQUE_ID}\",\"InternalError\",\"\",{{}}]"))
}

/// `[2, uniqueId, action, payload]`, for calls the central system initiates.
pub fn encode_call(unique_id: &str, action: &str, payload: &impl Serialize) -> String {
    to_frame(unique_id, &(CALL, unique_id, action, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> FrameError {
        match decode_frame(text) {
            Ok(frame) => panic!("{text} decoded as {frame:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn call_is_decoded_with_borrowed_parts() {
        let text = r#"[2, "19223201", "BootNotification", {"chargePointVendor": "VendorX"}]"#;
        let Frame::Call {
            unique_id,
            action,
            payload,
        } = decode_frame(text).unwrap()
        else {
            panic!("not a call")
        };
        assert_eq!(unique_id, "19223201");
        assert!(matches!(unique_id, Cow::Borrowed(_)));
        assert_eq!(action, "BootNotification");
        assert_eq!(payload.get(), r#"{"chargePointVendor": "VendorX"}"#);
    }

    #[test]
    fn call_result_and_call_error_are_decoded() {
        let frame = decode_frame(r#"[3,"a1",{"status":"Accepted"}]"#).unwrap();
        assert!(
            matches!(&frame, Frame::CallResult { payload, .. } if payload.get() == r#"{"status":"Accepted"}"#)
        );
        assert_eq!(frame.unique_id(), "a1");
        let frame = decode_frame(r#"[4,"a2","NotSupported","no \"reset\"",{"x":1}]"#).unwrap();
        let Frame::CallError {
            unique_id,
            code,
            description,
            details,
        } = frame
        else {
            panic!("not a call error")
        };
        assert_eq!(unique_id, "a2");
        assert_eq!(ErrorCode::parse(&code), Some(ErrorCode::NotSupported));
        assert_eq!(description, "no \"reset\"");
        assert_eq!(details.get(), r#"{"x":1}"#);
    }

    #[test]
    fn escaped_unique_ids_are_unescaped() {
        let frame = decode_frame(r#"[3,"a\"b",{}]"#).unwrap();
        assert_eq!(frame.unique_id(), "a\"b");
    }

    #[test]
    fn malformed_json_is_a_formation_violation_with_recovered_id() {
        let e = err(r#"[2, "abc-1", "Heartbeat", {"#);
        assert_eq!(e.code(), ErrorCode::FormationViolation);
        assert_eq!(e.unique_id(), "abc-1");
        let e = err(r#"[2,"x\"y","Heartbeat",{,}]"#);
        assert_eq!(e.unique_id(), "x\"y");
        let e = err("{not json");
        assert_eq!(e.code(), ErrorCode::FormationViolation);
        assert_eq!(e.unique_id(), "-1");
        let e = err(r#"[2, "unterminated"#);
        assert_eq!(e.unique_id(), "-1");
        let e = err("");
        assert_eq!(e.code(), ErrorCode::FormationViolation);
    }

    #[test]
    fn broken_object_is_malformed_not_protocol() {
        let e = err(r#"{"a": }"#);
        assert_eq!(e.code(), ErrorCode::FormationViolation);
    }

    #[test]
    fn non_array_is_a_protocol_error() {
        for text in [r#"{"a":1}"#, "42", r#""text""#, "null"] {
            let e = err(text);
            assert_eq!(e.code(), ErrorCode::ProtocolError, "{text}");
            assert_eq!(e.unique_id(), "-1");
        }
    }

    #[test]
    fn wrong_element_counts_are_protocol_errors_with_id() {
        for text in [
            r#"[2,"id7","Heartbeat"]"#,
            r#"[2,"id7","Heartbeat",{},{}]"#,
            r#"[3,"id7"]"#,
            r#"[3,"id7",{},{}]"#,
            r#"[4,"id7","GenericError",""]"#,
        ] {
            let e = err(text);
            assert_eq!(e.code(), ErrorCode::ProtocolError, "{text}");
            assert_eq!(e.unique_id(), "id7", "{text}");
        }
        let e = err("[]");
        assert_eq!((e.code(), e.unique_id()), (ErrorCode::ProtocolError, "-1"));
    }

    #[test]
    fn unknown_or_bad_type_ids_are_protocol_errors() {
        for text in [
            r#"[5,"id8","Heartbeat",{}]"#,
            r#"[0,"id8",{}]"#,
            r#"["2","id8","Heartbeat",{}]"#,
            r#"[2.5,"id8","Heartbeat",{}]"#,
            r#"[-2,"id8","Heartbeat",{}]"#,
        ] {
            let e = err(text);
            assert_eq!(e.code(), ErrorCode::ProtocolError, "{text}");
            assert_eq!(e.unique_id(), "id8", "{text}");
        }
    }

    #[test]
    fn non_string_fields_are_protocol_errors() {
        let e = err(r#"[2,17,"Heartbeat",{}]"#);
        assert_eq!((e.code(), e.unique_id()), (ErrorCode::ProtocolError, "-1"));
        let e = err(r#"[2,"id9",17,{}]"#);
        assert_eq!((e.code(), e.unique_id()), (ErrorCode::ProtocolError, "id9"));
        let e = err(r#"[4,"id9",1,"d",{}]"#);
        assert_eq!(e.code(), ErrorCode::ProtocolError);
    }

    #[test]
    fn encoders_escape_strings() {
        #[derive(Serialize)]
        struct P {
            note: &'static str,
        }
        let text = encode_call_result("q\"1", &P { note: "a\nb" });
        assert_eq!(text, r#"[3,"q\"1",{"note":"a\nb"}]"#);
        let text = encode_call_error("id", ErrorCode::OccurenceConstraintViolation, "x \"y\"");
        assert_eq!(
            text,
            r#"[4,"id","OccurenceConstraintViolation","x \"y\"",{}]"#
        );
        let text = encode_call("c1", "Reset", &serde_json::json!({"type": "Soft"}));
        assert_eq!(text, r#"[2,"c1","Reset",{"type":"Soft"}]"#);
    }

    #[test]
    fn encoded_frames_decode_again() {
        let text = encode_call("c2", "Reset", &serde_json::json!({"type": "Hard"}));
        assert!(matches!(decode_frame(&text), Ok(Frame::Call { action, .. }) if action == "Reset"));
        let text = encode_call_error("c3", ErrorCode::GenericError, "d");
        assert!(matches!(decode_frame(&text), Ok(Frame::CallError { .. })));
    }
}
