//! `ocpp_messages_total`: the CALLs charge points send, by action and by how they were answered.
//! Counted where the answer is made (`ws::answer`), the one place that sees both.

use actors::charge_point::Reply;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::ocpp::{ErrorCode, PayloadError};

/// The `result` label of an answered CALL.
pub const CALL_RESULT: &str = "CALLRESULT";

/// The `action` label of a message that could not be read as a CALL at all.
pub const MALFORMED: &str = "malformed";

/// The `action` label of a CALL whose action is not an OCPP 1.6 action: a charge point must not
/// be able to grow the number of series by inventing action names.
pub const UNKNOWN: &str = "unknown";

/// Labels of one series: the action, and `CALLRESULT` or the CALLERROR code that answered it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// The OCPP action (`MeterValues`...), `unknown` or `malformed`.
    pub action: String,
    /// `CALLRESULT`, or the CALLERROR error code (`FormationViolation`...).
    pub result: String,
}

/// Counter family shared by every session of one server (cheap to clone: an `Arc` inside).
#[derive(Debug, Clone, Default)]
pub struct OcppMessages(pub Family<MessageLabels, Counter>);

impl OcppMessages {
    /// Counts one CALL of `action` answered with `result`.
    pub fn record(&self, action: &str, result: &str) {
        self.0
            .get_or_create(&MessageLabels {
                action: action.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts a CALL the charge point actor answered.
    pub fn record_reply(&self, action: &str, reply: &Reply) {
        let result = match reply {
            Reply::Failed(_) => ErrorCode::InternalError.as_str(),
            _ => CALL_RESULT,
        };
        self.record(action, result);
    }

    /// Counts a CALL refused before it reached the actor (schema, unknown action), answered
    /// with `code` as the session's OCPP version spells it (a closed set per version, so the
    /// label set stays bounded).
    pub fn record_refused(&self, action: &str, code: &str, error: &PayloadError) {
        let action = match error {
            PayloadError::UnknownAction { .. } => UNKNOWN,
            _ => action,
        };
        self.record(action, code);
    }

    /// Counts a message that was not a well-formed OCPP-J frame, answered with `code`.
    pub fn record_malformed(&self, code: &str) {
        self.record(MALFORMED, code);
    }
}
