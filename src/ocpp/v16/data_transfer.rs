//! DataTransfer from a charge point.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use crate::ocpp::check::{max_len, max_len_opt};
use crate::ocpp::error::PayloadError;

/// DataTransfer.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataTransferReq {
    /// Identifies the vendor-specific implementation (at most 255 characters).
    pub vendor_id: String,
    /// Additional identification of the message (at most 50 characters).
    #[serde(default)]
    pub message_id: Option<String>,
    /// Data without specified length or format. The schema says string, but many firmwares send
    /// a JSON object; that is kept as its JSON text rather than refused.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

impl DataTransferReq {
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

/// DataTransfer.conf.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataTransferConf {
    /// Success or failure of the data transfer.
    pub status: &'static str,
    /// Optional data in response to the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}
