//! The CALL direction CSMS -> charging station in OCPP 2.0.1: encodes a [`ServerCall`] (which
//! the actors and the API keep in 1.6 terms) as a 2.0.1 CALL and reads the station's
//! CALLRESULT or CALLERROR back into the same [`CallResult`] a 1.6 charge point gives, so the
//! API and the boot metering run need no 2.0.1 branch. `docs/ocpp201-calls.md` has the
//! mapping:
//!
//! - Trigger -> TriggerMessage, the connector as `evse.id`; the status as sent.
//! - GetConfiguration -> GetVariables (Actual) of each key's variable ([`variables`]), every
//!   row of [`variables::TABLE`] when no key is given; the results come back as 1.6 keys.
//! - ChangeConfiguration -> SetVariables of one variable; `attributeStatus` becomes the 1.6
//!   ConfigurationStatus ([`set_variables::configuration_status`]).
//!
//! A call that cannot be put in 2.0.1 terms (a key that reaches no variable, a value longer
//! than SetVariables allows) is answered without asking the station, the way a 1.6 charge
//! point answers an unknown key: [`answer_without_call`].

use actors::server_call::{CallError, CallReply, CallResult, ServerCall};
use serde_json::value::RawValue;

use super::component_variable::ComponentVariable;
use super::get_variables::{GetVariablesRequest, GetVariablesResponse};
use super::set_variables::{self, SetVariablesRequest, SetVariablesResponse};
use super::trigger_message::{TriggerMessageRequest, TriggerMessageResponse};
use super::variables;
use crate::ocpp::check;
use crate::ocpp::frame::{encode_call, Frame};

/// What a [`ServerCall`] becomes in 2.0.1.
enum Plan<'a> {
    /// TriggerMessage.
    Trigger(TriggerMessageRequest),
    /// GetVariables of `asked` (never empty); `unmapped` keys are reported unknown unasked.
    Get {
        /// Keys asked for, with their variables.
        asked: Vec<(String, ComponentVariable)>,
        /// Keys that reach no variable.
        unmapped: Vec<String>,
    },
    /// SetVariables of one variable.
    Set {
        /// The variable.
        target: ComponentVariable,
        /// Its new value.
        value: &'a str,
    },
    /// Answered without the station.
    Local(CallReply),
}

/// Puts `call` in 2.0.1 terms.
fn plan(call: &ServerCall) -> Plan<'_> {
    match call {
        ServerCall::Trigger {
            message,
            connector_id,
        } => Plan::Trigger(TriggerMessageRequest::new(*message, *connector_id)),
        ServerCall::GetConfiguration { keys } if keys.is_empty() => Plan::Get {
            asked: variables::TABLE
                .iter()
                .map(|m| (m.key.to_owned(), m.component_variable()))
                .collect(),
            unmapped: Vec::new(),
        },
        ServerCall::GetConfiguration { keys } => {
            let mut asked = Vec::new();
            let mut unmapped = Vec::new();
            for key in keys {
                match variables::component_variable(key) {
                    Ok(target) => asked.push((key.clone(), target)),
                    Err(_) => unmapped.push(key.clone()),
                }
            }
            if asked.is_empty() {
                Plan::Local(CallReply::Configuration {
                    known: Vec::new(),
                    unknown: unmapped,
                })
            } else {
                Plan::Get { asked, unmapped }
            }
        }
        ServerCall::ChangeConfiguration { key, value } => {
            match variables::component_variable(key) {
                Err(_) => Plan::Local(CallReply::Change {
                    status: "NotSupported".into(),
                }),
                Ok(_) if value.chars().count() > set_variables::VALUE_MAX_CHARS => {
                    Plan::Local(CallReply::Change {
                        status: "Rejected".into(),
                    })
                }
                Ok(target) => Plan::Set { target, value },
            }
        }
    }
}

/// The answer to `call` when the station need not (and cannot) be asked: a ChangeConfiguration
/// of a key that reaches no 2.0.1 variable is `NotSupported`, one whose value is longer than
/// SetVariables carries (1000 characters) `Rejected`, a GetConfiguration of only such keys
/// lists them all as unknown. `None` for every call that goes to the station.
///
/// The session should resolve such a call with this answer instead of sending it. If it sends
/// it anyway, [`encode_server_call`] puts out a harmless read (GetVariables of
/// `OCPPCommCtrlr.HeartbeatInterval`) so the one-outstanding-call rule still holds, and
/// [`read_answer`] gives this answer once the station has replied.
pub fn answer_without_call(call: &ServerCall) -> Option<CallResult> {
    match plan(call) {
        Plan::Local(reply) => Some(Ok(reply)),
        _ => None,
    }
}

/// The variable read by the stand-in call of [`answer_without_call`]: every station has it.
fn stand_in() -> ComponentVariable {
    ComponentVariable::plain("OCPPCommCtrlr", "HeartbeatInterval", None)
}

/// The 2.0.1 CALL frame of `call` with `unique_id`.
pub fn encode_server_call(unique_id: &str, call: &ServerCall) -> String {
    match plan(call) {
        Plan::Trigger(request) => encode_call(unique_id, "TriggerMessage", &request),
        Plan::Get { asked, .. } => encode_call(
            unique_id,
            "GetVariables",
            &GetVariablesRequest::new(asked.iter().map(|(_, target)| target)),
        ),
        Plan::Set { target, value } => encode_call(
            unique_id,
            "SetVariables",
            &SetVariablesRequest::new(&target, value),
        ),
        Plan::Local(_) => encode_call(
            unique_id,
            "GetVariables",
            &GetVariablesRequest::new([&stand_in()]),
        ),
    }
}

/// Reads the CALLRESULT payload answering `call`; a payload that breaks the 2.0.1 response
/// schema is [`CallError::BadResponse`] naming the field.
pub fn decode_call_result(call: &ServerCall, payload: &RawValue) -> CallResult {
    let reply = match plan(call) {
        Plan::Trigger(_) => check::parse::<TriggerMessageResponse>(payload)
            .and_then(TriggerMessageResponse::into_reply),
        Plan::Get { asked, unmapped } => check::parse::<GetVariablesResponse>(payload)
            .and_then(|response| response.into_reply(&asked, unmapped)),
        Plan::Set { target, .. } => check::parse::<SetVariablesResponse>(payload)
            .and_then(|response| response.into_reply(&target)),
        Plan::Local(reply) => check::parse::<GetVariablesResponse>(payload)
            .and_then(|response| response.into_reply(&[], Vec::new()))
            .map(|_| reply),
    };
    reply.map_err(|e| CallError::BadResponse(e.to_string()))
}

/// The answer a frame of type 3 or 4 gives to the outstanding call `(unique_id, call)`: `None`
/// when it answers some other uniqueId. A CALLERROR is [`CallError::Refused`] with the
/// station's code as sent.
pub fn read_answer(frame: &Frame<'_>, unique_id: &str, call: &ServerCall) -> Option<CallResult> {
    crate::ocpp::outgoing::answer_with(frame, unique_id, |payload| {
        decode_call_result(call, payload)
    })
}
