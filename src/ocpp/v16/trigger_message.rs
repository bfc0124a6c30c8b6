//! TriggerMessage, sent by the central system to ask for a message now.

use actors::server_call::{CallReply, TriggerKind};
use serde::{Deserialize, Serialize};

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `TriggerMessageStatus` values.
pub const TRIGGER_MESSAGE_STATUSES: &[&str] = &["Accepted", "Rejected", "NotImplemented"];

/// TriggerMessage.req.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerMessageReq {
    /// The message the charge point should send.
    pub requested_message: &'static str,
    /// Only for this connector, when present (greater than 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<u32>,
}

impl TriggerMessageReq {
    /// The request for `message` on `connector_id`.
    pub fn new(message: TriggerKind, connector_id: Option<u32>) -> Self {
        TriggerMessageReq {
            requested_message: message.as_str(),
            connector_id,
        }
    }
}

/// TriggerMessage.conf.
#[derive(Debug, Clone, Deserialize)]
pub struct TriggerMessageConf {
    /// Whether the charge point will send the requested message.
    pub status: String,
}

impl TriggerMessageConf {
    /// Checks the schema constraints and builds the domain reply.
    pub(crate) fn into_reply(self) -> Result<CallReply, PayloadError> {
        let status = check::one_of("status", &self.status, TRIGGER_MESSAGE_STATUSES)?;
        Ok(CallReply::Trigger {
            status: status.to_owned(),
        })
    }
}
