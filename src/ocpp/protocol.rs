//! The OCPP version a session speaks, chosen once at the WebSocket upgrade from the
//! subprotocols the charge point offers (`ocpp.protocols`), and the per-session codec: the
//! session loop asks its [`Protocol`] to decode requests and encode answers, errors and server
//! calls, so no other place needs to know the version. The actors only ever see the
//! protocol-neutral [`Request`] / [`Reply`].
//!
//! Every CALLERROR code goes through [`Protocol::error_code`] / [`Protocol::frame_error_code`]:
//! OCPP-J 2.0.1 renames two 1.6 codes (`FormatViolation`, `OccurrenceConstraintViolation`) and
//! adds `RpcFrameworkError` and `MessageTypeNotSupported` (OCPP-J 2.0.1 section 4.3).

use std::fmt;

use actors::charge_point::{Reply, Request};
use actors::server_call::{CallResult, ServerCall};
use serde_json::value::RawValue;

use super::error::{ErrorCode, FrameError, PayloadError};
use super::frame::{encode_call_error_text, Frame};

/// An OCPP-J version this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OCPP 1.6J, subprotocol `ocpp1.6`.
    Ocpp16,
    /// OCPP 2.0.1, subprotocol `ocpp2.0.1`.
    Ocpp201,
}

impl Protocol {
    /// Every version, newest first: the default order of `ocpp.protocols`.
    pub const ALL: &'static [Protocol] = &[Protocol::Ocpp201, Protocol::Ocpp16];

    /// The WebSocket subprotocol name (RFC 6455 `Sec-WebSocket-Protocol`) of this version.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Protocol::Ocpp16 => "ocpp1.6",
            Protocol::Ocpp201 => "ocpp2.0.1",
        }
    }

    /// Reads a subprotocol name; `None` for versions this server does not speak. Exact match:
    /// subprotocol names are case-sensitive tokens.
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL
            .iter()
            .copied()
            .find(|p| p.subprotocol() == name.trim())
    }

    /// Picks the version of a session: the first of the client's `offers` (in its order) that
    /// is `enabled`; with no offer at all, 1.6 when enabled (chargers that omit the header
    /// predate 2.0.1). `None` when nothing offered is enabled: the upgrade is refused.
    pub fn negotiate(offers: &[&str], enabled: &[Protocol]) -> Option<Protocol> {
        if offers.is_empty() {
            return enabled
                .contains(&Protocol::Ocpp16)
                .then_some(Protocol::Ocpp16);
        }
        offers
            .iter()
            .filter_map(|offer| Protocol::parse(offer))
            .find(|p| enabled.contains(p))
    }

    /// Decodes the payload of a CALL into a domain request.
    pub fn decode_request(self, action: &str, payload: &RawValue) -> Result<Request, PayloadError> {
        match self {
            Protocol::Ocpp16 => super::decode_request(action, payload),
            Protocol::Ocpp201 => super::v201::decode_request(action, payload),
        }
    }

    /// Encodes the answer to the CALL `action` as the CALLRESULT of `unique_id` (a CALLERROR
    /// InternalError for [`Reply::Failed`]). 2.0.1 needs the action: several of its requests
    /// share one domain reply.
    pub fn encode_reply(self, unique_id: &str, action: &str, reply: &Reply) -> String {
        match self {
            Protocol::Ocpp16 => super::encode_reply(unique_id, reply),
            Protocol::Ocpp201 => super::v201::encode_reply(unique_id, action, reply),
        }
    }

    /// The CALLERROR answering a CALL whose payload [`Protocol::decode_request`] refused.
    pub fn encode_payload_error(self, unique_id: &str, err: &PayloadError) -> String {
        encode_call_error_text(unique_id, self.error_code(err.code()), &err.description())
    }

    /// The CALLERROR answering a message that is no OCPP-J frame.
    pub fn encode_frame_error(self, err: &FrameError) -> String {
        encode_call_error_text(
            err.unique_id(),
            self.frame_error_code(err),
            &err.description(),
        )
    }

    /// The CALLERROR answering a message that cannot be read as text at all (a binary frame
    /// that is not UTF-8): 1.6 FormationViolation, 2.0.1 RpcFrameworkError (no MessageId can be
    /// read from it).
    pub fn encode_unreadable(self, description: &str) -> String {
        let code = match self {
            Protocol::Ocpp16 => ErrorCode::FormationViolation.as_str(),
            Protocol::Ocpp201 => RPC_FRAMEWORK_ERROR,
        };
        encode_call_error_text(super::frame::UNKNOWN_UNIQUE_ID, code, description)
    }

    /// A CALLERROR with `code` spelled for this version.
    pub fn encode_call_error(self, unique_id: &str, code: ErrorCode, description: &str) -> String {
        encode_call_error_text(unique_id, self.error_code(code), description)
    }

    /// The answer to a server-initiated call that this version cannot put to the charge point
    /// (a 1.6 configuration key with no 2.0.1 variable), given without sending anything; `None`
    /// for every call that goes on the wire.
    pub fn answer_without_call(self, call: &ServerCall) -> Option<CallResult> {
        match self {
            Protocol::Ocpp16 => None,
            Protocol::Ocpp201 => super::v201::outgoing::answer_without_call(call),
        }
    }

    /// The CALL frame of a server-initiated call.
    pub fn encode_server_call(self, unique_id: &str, call: &ServerCall) -> String {
        match self {
            Protocol::Ocpp16 => super::outgoing::encode_server_call(unique_id, call),
            Protocol::Ocpp201 => super::v201::outgoing::encode_server_call(unique_id, call),
        }
    }

    /// The answer a CALLRESULT or CALLERROR gives to the outstanding call `(unique_id, call)`;
    /// `None` when it answers another uniqueId.
    pub fn read_answer(
        self,
        frame: &Frame<'_>,
        unique_id: &str,
        call: &ServerCall,
    ) -> Option<CallResult> {
        match self {
            Protocol::Ocpp16 => super::outgoing::read_answer(frame, unique_id, call),
            Protocol::Ocpp201 => super::v201::outgoing::read_answer(frame, unique_id, call),
        }
    }

    /// The wire spelling of `code` in this version: 1.6 keeps its own (including the spec's
    /// `OccurenceConstraintViolation`), 2.0.1 renamed `FormationViolation` to `FormatViolation`
    /// and fixed the spelling of `OccurrenceConstraintViolation`.
    pub fn error_code(self, code: ErrorCode) -> &'static str {
        match (self, code) {
            (Protocol::Ocpp201, ErrorCode::FormationViolation) => "FormatViolation",
            (Protocol::Ocpp201, ErrorCode::OccurenceConstraintViolation) => {
                "OccurrenceConstraintViolation"
            }
            (_, code) => code.as_str(),
        }
    }

    /// The code answering a message that is no OCPP-J frame. 1.6: broken JSON is a
    /// FormationViolation, anything else a ProtocolError. 2.0.1 (OCPP-J 2.0.1 section 4.3): an
    /// unknown MessageTypeId is `MessageTypeNotSupported`; a message whose envelope cannot be
    /// read (broken JSON, not an array, no string MessageId, wrong element count) is
    /// `RpcFrameworkError`.
    pub fn frame_error_code(self, err: &FrameError) -> &'static str {
        match (self, err) {
            (Protocol::Ocpp16, err) => err.code().as_str(),
            (Protocol::Ocpp201, FrameError::UnknownMessageType { .. }) => {
                MESSAGE_TYPE_NOT_SUPPORTED
            }
            (Protocol::Ocpp201, _) => RPC_FRAMEWORK_ERROR,
        }
    }
}

/// OCPP-J 2.0.1: "A message with a Message Type Number received that is not supported by this
/// implementation."
pub const MESSAGE_TYPE_NOT_SUPPORTED: &str = "MessageTypeNotSupported";

/// OCPP-J 2.0.1: "Content of the call is not a valid RPC Request, for example: MessageId could
/// not be read."
pub const RPC_FRAMEWORK_ERROR: &str = "RpcFrameworkError";

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subprotocol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Protocol::ALL {
            assert_eq!(Protocol::parse(p.subprotocol()), Some(*p));
        }
        assert_eq!(Protocol::parse("ocpp2.0"), None);
        assert_eq!(Protocol::parse("OCPP1.6"), None);
    }

    #[test]
    fn the_first_enabled_offer_wins() {
        let both = [Protocol::Ocpp201, Protocol::Ocpp16];
        let only16 = [Protocol::Ocpp16];
        let only201 = [Protocol::Ocpp201];
        let n = Protocol::negotiate;
        assert_eq!(n(&["ocpp1.6", "ocpp2.0.1"], &both), Some(Protocol::Ocpp16));
        assert_eq!(n(&["ocpp2.0.1", "ocpp1.6"], &both), Some(Protocol::Ocpp201));
        assert_eq!(n(&["ocpp2.0", "ocpp2.0.1"], &both), Some(Protocol::Ocpp201));
        assert_eq!(
            n(&["ocpp2.0.1", "ocpp1.6"], &only16),
            Some(Protocol::Ocpp16)
        );
        assert_eq!(n(&["ocpp2.0.1"], &only16), None);
        assert_eq!(n(&["ocpp1.5"], &both), None);
        assert_eq!(n(&[], &both), Some(Protocol::Ocpp16));
        assert_eq!(n(&[], &only201), None);
    }

    #[test]
    fn codes_are_spelled_per_version() {
        let v16 = Protocol::Ocpp16;
        let v201 = Protocol::Ocpp201;
        assert_eq!(
            v16.error_code(ErrorCode::FormationViolation),
            "FormationViolation"
        );
        assert_eq!(
            v201.error_code(ErrorCode::FormationViolation),
            "FormatViolation"
        );
        assert_eq!(
            v16.error_code(ErrorCode::OccurenceConstraintViolation),
            "OccurenceConstraintViolation"
        );
        assert_eq!(
            v201.error_code(ErrorCode::OccurenceConstraintViolation),
            "OccurrenceConstraintViolation"
        );
        assert_eq!(v201.error_code(ErrorCode::NotImplemented), "NotImplemented");
        let unknown_type = super::super::decode_frame(r#"[7,"u1","Heartbeat",{}]"#).unwrap_err();
        assert_eq!(v16.frame_error_code(&unknown_type), "ProtocolError");
        assert_eq!(
            v201.frame_error_code(&unknown_type),
            "MessageTypeNotSupported"
        );
        let broken = super::super::decode_frame(r#"[2,"u2","Heartbeat",{"#).unwrap_err();
        assert_eq!(v16.frame_error_code(&broken), "FormationViolation");
        assert_eq!(v201.frame_error_code(&broken), "RpcFrameworkError");
        let no_id = super::super::decode_frame(r#"[2,17,"Heartbeat",{}]"#).unwrap_err();
        assert_eq!(v201.frame_error_code(&no_id), "RpcFrameworkError");
        let text = v201.encode_frame_error(&unknown_type);
        assert!(
            text.starts_with(r#"[4,"u1","MessageTypeNotSupported","#),
            "{text}"
        );
    }
}
