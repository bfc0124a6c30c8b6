//! DataTransfer (2.0.1) from a station; `data` may be any JSON value.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use crate::ocpp::check::{max_len, max_len_opt};
use crate::ocpp::error::PayloadError;

/// DataTransferRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataTransferRequest {
    /// The vendor-specific implementation (at most 255 characters).
    pub vendor_id: String,
    /// Additional identification (at most 50 characters).
    #[serde(default)]
    pub message_id: Option<String>,
    /// Any JSON value; kept as its JSON text (a string as the string itself, as in 1.6).
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

impl DataTransferRequest {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        max_len("vendorId", &self.vendor_id, 255)?;
        max_len_opt("messageId", self.message_id.as_deref(), 50)?;
        let data = match self.data {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other) => Some(other.to_string()),
        };
        Ok(Request::DataTransfer {
            vendor_id: self.vendor_id,
            message_id: self.message_id,
            data,
        })
    }
}

/// DataTransferResponse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataTransferResponse {
    /// `DataTransferStatusEnumType`.
    pub status: &'static str,
    /// Optional answer data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}
