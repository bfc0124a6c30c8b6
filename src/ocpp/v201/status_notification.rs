//! StatusNotification (2.0.1): one connector of one EVSE, onto the stored connector = EVSE id.

use actors::charge_point::Request;
use actors::exchange::StatusReport;
use serde::Deserialize;

use crate::ocpp::check::{connector_id, date_time, one_of};
use crate::ocpp::error::PayloadError;
use crate::ocpp::text::Text;

/// `ConnectorStatusEnumType`.
const CONNECTOR_STATUSES: &[&str] = &[
    "Available",
    "Occupied",
    "Reserved",
    "Unavailable",
    "Faulted",
];

/// StatusNotificationRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusNotificationRequest<'a> {
    /// When the status changed.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
    /// The connector's status.
    pub connector_status: String,
    /// The EVSE: the stored connector.
    pub evse_id: i64,
    /// The connector on that EVSE: kept in the report's `info`, not a series of its own.
    pub connector_id: i64,
}

impl StatusNotificationRequest<'_> {
    /// Checks the schema constraints and builds the domain request. 2.0.1 has no error code
    /// in StatusNotification (faults come as NotifyEvent), so the report's is `NoError`.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let (timestamp, _) = date_time("timestamp", self.timestamp.as_str())?;
        let status = one_of(
            "connectorStatus",
            &self.connector_status,
            CONNECTOR_STATUSES,
        )?;
        let evse = connector_id("evseId", self.evse_id, 0)?;
        let plug = connector_id("connectorId", self.connector_id, 0)?;
        Ok(Request::StatusNotification(StatusReport {
            connector_id: evse,
            status: status.to_owned(),
            error_code: "NoError".to_owned(),
            info: Some(format!("connectorId {plug}")),
            timestamp: Some(timestamp),
            vendor_id: None,
            vendor_error_code: None,
        }))
    }
}
