//! DiagnosticsStatusNotification.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `DiagnosticsStatus` values.
pub const DIAGNOSTICS_STATUSES: &[&str] = &["Idle", "Uploaded", "UploadFailed", "Uploading"];

/// DiagnosticsStatusNotification.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticsStatusNotificationReq {
    /// The status of the diagnostics upload.
    pub status: String,
}

impl DiagnosticsStatusNotificationReq {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let status = check::one_of("status", &self.status, DIAGNOSTICS_STATUSES)?;
        Ok(Request::DiagnosticsStatus {
            status: status.to_owned(),
        })
    }
}

/// DiagnosticsStatusNotification.conf: empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DiagnosticsStatusNotificationConf {}
