//! StopTransaction, with its optional `transactionData` readings.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use super::id_tag_info::{IdTagInfo, ID_TOKEN_MAX};
use super::meter_values::MeterValue;
use super::text::Text;
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;
use crate::ocpp::readings;

/// The `Reason` values for stopping a transaction.
pub const STOP_REASONS: &[&str] = &[
    "EmergencyStop",
    "EVDisconnected",
    "HardReset",
    "Local",
    "Other",
    "PowerLoss",
    "Reboot",
    "Remote",
    "SoftReset",
    "UnlockCommand",
    "DeAuthorized",
];

/// StopTransaction.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTransactionReq<'a> {
    /// The identifier that stopped the transaction, if any (at most 20 characters).
    #[serde(default)]
    pub id_tag: Option<String>,
    /// Meter value in Wh for the connector at end of the transaction.
    pub meter_stop: i64,
    /// When the transaction stopped; a time without offset is read as UTC.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
    /// The transaction id received in StartTransaction.conf.
    pub transaction_id: i64,
    /// Why the transaction stopped; absence means Local.
    #[serde(default)]
    pub reason: Option<String>,
    /// Transaction usage details relevant for billing.
    #[serde(borrow, default)]
    pub transaction_data: Option<Vec<MeterValue<'a>>>,
}

impl StopTransactionReq<'_> {
    /// Checks the schema constraints and builds the domain request.
    ///
    /// The request does not name its connector, so the samples of `transactionData` carry
    /// connector 0 and the transaction id; the charge point actor, which knows which connector
    /// runs the transaction, must set the real connector before storing them.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let transaction_id = check::int32("transactionId", self.transaction_id)?;
        check::max_len_opt("idTag", self.id_tag.as_deref(), ID_TOKEN_MAX)?;
        let reason = self
            .reason
            .as_deref()
            .map(|r| check::one_of("reason", r, STOP_REASONS))
            .transpose()?
            .map(str::to_owned);
        let (timestamp, _) = check::date_time("timestamp", self.timestamp.as_str())?;
        let data = self.transaction_data.as_deref().unwrap_or_default();
        let readings = readings::convert("transactionData", data, 0, Some(transaction_id))?;
        Ok(Request::StopTransaction {
            transaction_id,
            id_tag: self.id_tag,
            meter_stop: self.meter_stop,
            timestamp,
            reason,
            readings,
        })
    }
}

/// StopTransaction.conf.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTransactionConf {
    /// Authorization status of the idTag, present when the request carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_tag_info: Option<IdTagInfo>,
}
