//! FirmwareStatusNotification (2.0.1): logged by the actor, answered empty.

use actors::charge_point::Request;
use serde::Deserialize;

use crate::ocpp::check::one_of;
use crate::ocpp::error::PayloadError;

/// `FirmwareStatusEnumType`.
const FIRMWARE_STATUSES: &[&str] = &[
    "Downloaded",
    "DownloadFailed",
    "Downloading",
    "DownloadScheduled",
    "DownloadPaused",
    "Idle",
    "InstallationFailed",
    "Installing",
    "Installed",
    "InstallRebooting",
    "InstallScheduled",
    "InstallVerificationFailed",
    "InvalidSignature",
    "SignatureVerified",
];

/// FirmwareStatusNotificationRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareStatusNotificationRequest {
    /// Progress of the firmware update.
    pub status: String,
    /// The UpdateFirmware request it answers, if any.
    #[serde(default)]
    pub request_id: Option<i64>,
}

impl FirmwareStatusNotificationRequest {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let status = one_of("status", &self.status, FIRMWARE_STATUSES)?;
        Ok(Request::FirmwareStatus {
            status: status.to_owned(),
        })
    }
}
