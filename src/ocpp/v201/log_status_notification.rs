//! LogStatusNotification (2.0.1): the log upload's progress, onto the domain's diagnostics
//! status (1.6 DiagnosticsStatusNotification is the same report).

use actors::charge_point::Request;
use serde::Deserialize;

use crate::ocpp::check::one_of;
use crate::ocpp::error::PayloadError;

/// `UploadLogStatusEnumType`.
const UPLOAD_STATUSES: &[&str] = &[
    "BadMessage",
    "Idle",
    "NotSupportedOperation",
    "PermissionDenied",
    "Uploaded",
    "UploadFailure",
    "Uploading",
    "AcceptedCanceled",
];

/// LogStatusNotificationRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStatusNotificationRequest {
    /// Progress of the upload.
    pub status: String,
    /// The GetLog request it answers, if any.
    #[serde(default)]
    pub request_id: Option<i64>,
}

impl LogStatusNotificationRequest {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let status = one_of("status", &self.status, UPLOAD_STATUSES)?;
        Ok(Request::DiagnosticsStatus {
            status: status.to_owned(),
        })
    }
}
