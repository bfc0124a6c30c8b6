//! StatusNotification.

use actors::charge_point::Request;
use actors::exchange::StatusReport;
use serde::{Deserialize, Serialize};

use super::text::Text;
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `ChargePointStatus` values.
pub const CHARGE_POINT_STATUSES: &[&str] = &[
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
];

/// The `ChargePointErrorCode` values.
pub const CHARGE_POINT_ERROR_CODES: &[&str] = &[
    "ConnectorLockFailure",
    "EVCommunicationError",
    "GroundFailure",
    "HighTemperature",
    "InternalError",
    "LocalListConflict",
    "NoError",
    "OtherError",
    "OverCurrentFailure",
    "PowerMeterFailure",
    "PowerSwitchFailure",
    "ReaderFailure",
    "ResetFailure",
    "UnderVoltage",
    "OverVoltage",
    "WeakSignal",
];

/// StatusNotification.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusNotificationReq<'a> {
    /// The connector the status is for; 0 is the charge point as a whole.
    pub connector_id: i64,
    /// The error code reported by the charge point.
    pub error_code: String,
    /// Additional free format information (at most 50 characters).
    #[serde(default)]
    pub info: Option<String>,
    /// The current status of the connector.
    pub status: String,
    /// When the status was reported; a time without offset is read as UTC.
    #[serde(borrow, default)]
    pub timestamp: Option<Text<'a>>,
    /// Identifies the vendor of a vendor-specific error (at most 255 characters).
    #[serde(default)]
    pub vendor_id: Option<String>,
    /// The vendor-specific error code (at most 50 characters).
    #[serde(default)]
    pub vendor_error_code: Option<String>,
}

impl StatusNotificationReq<'_> {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let connector_id = check::connector_id("connectorId", self.connector_id, 0)?;
        let error_code = check::one_of("errorCode", &self.error_code, CHARGE_POINT_ERROR_CODES)?;
        let status = check::one_of("status", &self.status, CHARGE_POINT_STATUSES)?;
        check::max_len_opt("info", self.info.as_deref(), 50)?;
        check::max_len_opt("vendorId", self.vendor_id.as_deref(), 255)?;
        check::max_len_opt("vendorErrorCode", self.vendor_error_code.as_deref(), 50)?;
        let timestamp = self
            .timestamp
            .map(|t| check::date_time("timestamp", t.as_str()).map(|(at, _)| at))
            .transpose()?;
        Ok(Request::StatusNotification(StatusReport {
            connector_id,
            status: status.to_owned(),
            error_code: error_code.to_owned(),
            info: self.info,
            timestamp,
            vendor_id: self.vendor_id,
            vendor_error_code: self.vendor_error_code,
        }))
    }
}

/// StatusNotification.conf: empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusNotificationConf {}
