//! Server-initiated calls in OCPP 2.0.1 form. Replaced by the outgoing codec (TriggerMessage,
//! GetVariables / SetVariables); this stub only gives the session's codec its two entry points
//! so that the inbound side compiles on its own.

use actors::server_call::{CallError, CallResult, ServerCall};

use crate::ocpp::frame::{encode_call, Frame};

/// The CALL frame of `call` with `unique_id`, in 2.0.1 form. Replaced by the outgoing codec.
pub fn encode_server_call(unique_id: &str, call: &ServerCall) -> String {
    encode_call(unique_id, call.action(), &serde_json::json!({}))
}

/// The answer a frame of type 3 or 4 gives to the outstanding call `(unique_id, call)`: `None`
/// when it answers some other uniqueId. Replaced by the outgoing codec.
pub fn read_answer(frame: &Frame<'_>, unique_id: &str, call: &ServerCall) -> Option<CallResult> {
    if frame.unique_id() != unique_id {
        return None;
    }
    match frame {
        Frame::Call { .. } => None,
        _ => Some(Err(CallError::BadResponse(format!(
            "{} answers are not read in OCPP 2.0.1 yet",
            call.action()
        )))),
    }
}
