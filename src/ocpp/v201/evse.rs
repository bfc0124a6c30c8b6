//! `EVSEType` (2.0.1): an EVSE of the station and optionally one of its connectors, and the
//! rule that maps it onto the stored connector (docs/ocpp201.md).

use serde::Deserialize;

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// `EVSEType`: an EVSE of the station and optionally one of its connectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evse {
    /// The EVSE (> 0 in a transaction; 0 stands for the station in MeterValues).
    pub id: i64,
    /// The connector (plug) on that EVSE.
    #[serde(default)]
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
