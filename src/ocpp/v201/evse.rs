//! `EVSEType` (2.0.1): an EVSE of the station and optionally one of its connectors, and the
//! rule that maps it onto the stored connector (docs/ocpp201.md).

use serde::{Deserialize, Serialize};

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// `EVSEType`: an EVSE of the station and optionally one of its connectors. Read from the
/// station's messages and written into the server's calls (TriggerMessage, a device model
/// component's EVSE), so one type serves both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evse {
    /// "EVSE Identifier. This contains a number (> 0) designating an EVSE of the Charging
    /// Station." (0 stands for the station as a whole in MeterValues.)
    pub id: i64,
    /// "An id to designate a specific connector (on an EVSE) by connector index number."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<i64>,
}

impl Evse {
    /// The stored connector this EVSE maps onto: the EVSE id (docs/ocpp201.md).
    pub(crate) fn stored_connector(&self, path: &str) -> Result<u32, PayloadError> {
        if let Some(connector) = self.connector_id {
            check::connector_id(&format!("{path}.connectorId"), connector, 0)?;
        }
        check::connector_id(&format!("{path}.id"), self.id, 0)
    }
}
