//! StartTransaction.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use super::id_tag_info::{IdTagInfo, ID_TOKEN_MAX};
use super::text::Text;
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// StartTransaction.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartTransactionReq<'a> {
    /// The connector the transaction runs on (> 0).
    pub connector_id: i64,
    /// The identifier that started the transaction (at most 20 characters).
    pub id_tag: String,
    /// Meter value in Wh for the connector at start of the transaction.
    pub meter_start: i64,
    /// The reservation that terminates as a result of this transaction.
    #[serde(default)]
    pub reservation_id: Option<i64>,
    /// When the transaction started; a time without offset is read as UTC.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
}

impl StartTransactionReq<'_> {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let connector_id = check::connector_id("connectorId", self.connector_id, 1)?;
        check::max_len("idTag", &self.id_tag, ID_TOKEN_MAX)?;
        let reservation_id = self
            .reservation_id
            .map(|r| check::int32("reservationId", r))
            .transpose()?;
        let (timestamp, _) = check::date_time("timestamp", self.timestamp.as_str())?;
        Ok(Request::StartTransaction {
            connector_id,
            id_tag: self.id_tag,
            meter_start: self.meter_start,
            timestamp,
            reservation_id,
        })
    }
}

/// StartTransaction.conf.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartTransactionConf {
    /// Authorization status of the idTag.
    pub id_tag_info: IdTagInfo,
    /// The transaction id supplied by the central system.
    pub transaction_id: i32,
}
