//! TriggerMessage (OCPP 2.0.1, use case F06), sent by the CSMS to ask the charging station for
//! a message now. The API's connector is the stored connector, which is the 2.0.1 EVSE id
//! (the inbound mapping's rule), so it goes out as `evse.id`.

use actors::server_call::{CallReply, TriggerKind};
use serde::{Deserialize, Serialize};

use super::evse::Evse;
use super::status_info::StatusInfo;
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `TriggerMessageStatusEnumType` values, also the 1.6 ones the API reports.
pub const TRIGGER_MESSAGE_STATUSES: &[&str] = &["Accepted", "Rejected", "NotImplemented"];

/// TriggerMessageRequest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerMessageRequest {
    /// "Type of message to be triggered." The four messages the API triggers carry the same
    /// names in 1.6 and 2.0.1.
    pub requested_message: &'static str,
    /// "Can be used to specify the EVSE and Connector if required for the message which needs
    /// to be sent." Absent: the whole charging station.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evse: Option<Evse>,
}

impl TriggerMessageRequest {
    /// The request for `message` on the stored connector `connector_id` (= EVSE id).
    pub fn new(message: TriggerKind, connector_id: Option<u32>) -> Self {
        TriggerMessageRequest {
            requested_message: message.as_str(),
            evse: connector_id.map(|id| Evse {
                id: i64::from(id),
                connector_id: None,
            }),
        }
    }
}

/// TriggerMessageResponse.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerMessageResponse {
    /// "Indicates whether the Charging Station will send the requested notification or not."
    pub status: String,
    /// "Detailed status information."
    #[serde(default)]
    pub status_info: Option<StatusInfo>,
}

impl TriggerMessageResponse {
    /// Checks the schema constraints and builds the domain reply (the status as 1.6 spells
    /// it, which is the same).
    pub(crate) fn into_reply(self) -> Result<CallReply, PayloadError> {
        let status = check::one_of("status", &self.status, TRIGGER_MESSAGE_STATUSES)?;
        if let Some(info) = &self.status_info {
            info.check("statusInfo")?;
        }
        Ok(CallReply::Trigger {
            status: status.to_owned(),
        })
    }
}
