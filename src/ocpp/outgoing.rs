//! The CALL direction central system -> charge point: encodes a [`ServerCall`] as an OCPP-J
//! CALL and reads the charge point's CALLRESULT or CALLERROR back into a [`CallResult`].

use actors::server_call::{CallError, CallResult, ServerCall};
use serde_json::value::RawValue;

use super::check;
use super::frame::{encode_call, Frame};
use super::v16::change_configuration::{ChangeConfigurationConf, ChangeConfigurationReq};
use super::v16::get_configuration::{GetConfigurationConf, GetConfigurationReq};
use super::v16::trigger_message::{TriggerMessageConf, TriggerMessageReq};

/// The CALL frame of `call` with `unique_id`.
pub fn encode_server_call(unique_id: &str, call: &ServerCall) -> String {
    match call {
        ServerCall::Trigger {
            message,
            connector_id,
        } => encode_call(
            unique_id,
            call.action(),
            &TriggerMessageReq::new(*message, *connector_id),
        ),
        ServerCall::GetConfiguration { keys } => encode_call(
            unique_id,
            call.action(),
            &GetConfigurationReq {
                key: (!keys.is_empty()).then(|| keys.clone()),
            },
        ),
        ServerCall::ChangeConfiguration { key, value } => encode_call(
            unique_id,
            call.action(),
            &ChangeConfigurationReq { key, value },
        ),
    }
}

/// Reads the CALLRESULT payload answering `call`; a payload that breaks the response schema is
/// [`CallError::BadResponse`].
pub fn decode_call_result(call: &ServerCall, payload: &RawValue) -> CallResult {
    let reply = match call {
        ServerCall::Trigger { .. } => {
            check::parse::<TriggerMessageConf>(payload).and_then(TriggerMessageConf::into_reply)
        }
        ServerCall::GetConfiguration { .. } => {
            check::parse::<GetConfigurationConf>(payload).and_then(GetConfigurationConf::into_reply)
        }
        ServerCall::ChangeConfiguration { .. } => check::parse::<ChangeConfigurationConf>(payload)
            .and_then(ChangeConfigurationConf::into_reply),
    };
    reply.map_err(|e| CallError::BadResponse(e.to_string()))
}

/// The answer a frame of type 3 or 4 gives to the outstanding call `(unique_id, call)`: `None`
/// when it answers some other uniqueId.
pub fn read_answer(frame: &Frame<'_>, unique_id: &str, call: &ServerCall) -> Option<CallResult> {
    answer_with(frame, unique_id, |payload| {
        decode_call_result(call, payload)
    })
}

/// [`read_answer`] with the CALLRESULT payload read by `decode`: the envelope rules (same
/// uniqueId, a CALLERROR is `Refused` with the code as sent) are the same in every OCPP-J
/// version, only the payload's schema differs.
pub(crate) fn answer_with(
    frame: &Frame<'_>,
    unique_id: &str,
    decode: impl FnOnce(&RawValue) -> CallResult,
) -> Option<CallResult> {
    if frame.unique_id() != unique_id {
        return None;
    }
    match frame {
        Frame::CallResult { payload, .. } => Some(decode(payload)),
        Frame::CallError {
            code, description, ..
        } => Some(Err(CallError::Refused {
            code: code.to_string(),
            description: description.to_string(),
        })),
        Frame::Call { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::server_call::{CallReply, TriggerKind};
    use serde_json::{json, Value};

    fn raw(v: Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    #[test]
    fn calls_are_encoded_as_ocpp_j_calls() {
        let text = encode_server_call(
            "cs-1",
            &ServerCall::Trigger {
                message: TriggerKind::MeterValues,
                connector_id: Some(2),
            },
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            json!([2, "cs-1", "TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 2}])
        );
        let text = encode_server_call("x", &ServerCall::GetConfiguration { keys: vec![] });
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!([2, "x", "GetConfiguration", {}])
        );
    }

    #[test]
    fn answers_are_checked_against_the_response_schema() {
        let change = ServerCall::ChangeConfiguration {
            key: "k".into(),
            value: "v".into(),
        };
        assert_eq!(
            decode_call_result(&change, &raw(json!({"status": "RebootRequired"}))),
            Ok(CallReply::Change {
                status: "RebootRequired".into()
            })
        );
        assert!(matches!(
            decode_call_result(&change, &raw(json!({"status": "Maybe"}))),
            Err(CallError::BadResponse(_))
        ));
        let get = ServerCall::GetConfiguration { keys: vec![] };
        assert!(matches!(
            decode_call_result(&get, &raw(json!({"configurationKey": [{"key": "a"}]}))),
            Err(CallError::BadResponse(_))
        ));
    }
}
