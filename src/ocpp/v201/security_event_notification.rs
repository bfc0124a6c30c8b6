//! SecurityEventNotification (2.0.1): logged, answered empty.

use actors::charge_point::Request;
use serde::Deserialize;

use crate::ocpp::check::{date_time, max_len, max_len_opt};
use crate::ocpp::error::PayloadError;

/// SecurityEventNotificationRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEventNotificationRequest {
    /// The security event (at most 50 characters, e.g. `FirmwareUpdated`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub timestamp: String,
    /// Technical detail (at most 255 characters).
    #[serde(default)]
    pub tech_info: Option<String>,
}

impl SecurityEventNotificationRequest {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        max_len("type", &self.kind, 50)?;
        let (at, _) = date_time("timestamp", &self.timestamp)?;
        max_len_opt("techInfo", self.tech_info.as_deref(), 255)?;
        let detail = match &self.tech_info {
            Some(info) => format!("{} at {} ({info:?})", self.kind, at.to_rfc3339()),
            None => format!("{} at {}", self.kind, at.to_rfc3339()),
        };
        Ok(Request::Notice {
            kind: "security event",
            detail,
        })
    }
}
