//! FirmwareStatusNotification.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `FirmwareStatus` values.
pub const FIRMWARE_STATUSES: &[&str] = &[
    "Downloaded",
    "DownloadFailed",
    "Downloading",
    "Idle",
    "InstallationFailed",
    "Installing",
    "Installed",
];

/// FirmwareStatusNotification.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirmwareStatusNotificationReq {
    /// The progress of the firmware installation.
    pub status: String,
}

impl FirmwareStatusNotificationReq {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let status = check::one_of("status", &self.status, FIRMWARE_STATUSES)?;
        Ok(Request::FirmwareStatus {
            status: status.to_owned(),
        })
    }
}

/// FirmwareStatusNotification.conf: empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FirmwareStatusNotificationConf {}
