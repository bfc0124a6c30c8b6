//! TransactionEvent (2.0.1): Started / Updated / Ended of a transaction the station names,
//! onto the domain's [`StationTransaction`] (the actor maps the station's id onto an integer
//! id, opens and closes the record, and stores the readings under it).

use actors::charge_point::{Request, StationTransaction, TransactionStage};
use serde::{Deserialize, Serialize};

use super::authorize::{IdToken, IdTokenInfo};
use super::evse::Evse;
use super::meter_values::{self, MeterValue};
use crate::ocpp::check::{self, date_time, max_len, one_of};
use crate::ocpp::error::PayloadError;
use crate::ocpp::text::Text;

/// `TriggerReasonEnumType`.
const TRIGGER_REASONS: &[&str] = &[
    "Authorized",
    "CablePluggedIn",
    "ChargingRateChanged",
    "ChargingStateChanged",
    "Deauthorized",
    "EnergyLimitReached",
    "EVCommunicationLost",
    "EVConnectTimeout",
    "MeterValueClock",
    "MeterValuePeriodic",
    "TimeLimitReached",
    "Trigger",
    "UnlockCommand",
    "StopAuthorized",
    "EVDeparted",
    "EVDetected",
    "RemoteStop",
    "RemoteStart",
    "AbnormalCondition",
    "SignedDataReceived",
    "ResetCommand",
];

/// `ReasonEnumType`: why a transaction stopped.
const STOPPED_REASONS: &[&str] = &[
    "DeAuthorized",
    "EmergencyStop",
    "EnergyLimitReached",
    "EVDisconnected",
    "GroundFault",
    "ImmediateReset",
    "Local",
    "LocalOutOfCredit",
    "MasterPass",
    "Other",
    "OvercurrentFault",
    "PowerLoss",
    "PowerQuality",
    "Reboot",
    "Remote",
    "SOCLimitReached",
    "StoppedByEV",
    "TimeLimitReached",
    "Timeout",
];

/// `ChargingStateEnumType`.
const CHARGING_STATES: &[&str] = &[
    "Charging",
    "EVConnected",
    "SuspendedEV",
    "SuspendedEVSE",
    "Idle",
];

/// TransactionEventRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionEventRequest<'a> {
    /// Started, Updated or Ended.
    pub event_type: String,
    /// When the event happened.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
    /// Why the station sent it.
    pub trigger_reason: String,
    /// The station's sequence number (retransmissions repeat it).
    pub seq_no: i64,
    /// Happened while the station was offline; default false.
    #[serde(default)]
    pub offline: Option<bool>,
    /// The transaction.
    pub transaction_info: TransactionInfo,
    /// The EVSE (required in the first event of a transaction on it).
    #[serde(default)]
    pub evse: Option<Evse>,
    /// The token, when one was presented.
    #[serde(default)]
    pub id_token: Option<IdToken>,
    /// Meter values of the event.
    #[serde(borrow, default)]
    pub meter_value: Option<Vec<MeterValue<'a>>>,
    /// Phases used (accepted, not stored).
    #[serde(default)]
    pub number_of_phases_used: Option<i64>,
    /// Cable rating in A (accepted, not stored).
    #[serde(default)]
    pub cable_max_current: Option<i64>,
    /// Reservation ended by this transaction (accepted, not stored).
    #[serde(default)]
    pub reservation_id: Option<i64>,
}

/// `TransactionType`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionInfo {
    /// The station's id of the transaction (1 to 36 characters).
    pub transaction_id: String,
    /// Charging state, when it changed.
    #[serde(default)]
    pub charging_state: Option<String>,
    /// Seconds energy flowed (accepted, not stored).
    #[serde(default)]
    pub time_spent_charging: Option<i64>,
    /// Why it stopped (in the Ended event).
    #[serde(default)]
    pub stopped_reason: Option<String>,
    /// The RequestStartTransaction it answers (accepted, not stored).
    #[serde(default)]
    pub remote_start_id: Option<i64>,
}

impl TransactionEventRequest<'_> {
    /// Checks the schema constraints and builds the domain request. The readings carry the
    /// EVSE as connector (0 when the event names none; the actor then uses the one it knows)
    /// and no transaction id yet.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let stage = match one_of(
            "eventType",
            &self.event_type,
            &["Started", "Updated", "Ended"],
        )? {
            "Started" => TransactionStage::Started,
            "Updated" => TransactionStage::Updated,
            _ => TransactionStage::Ended,
        };
        let (timestamp, _) = date_time("timestamp", self.timestamp.as_str())?;
        let trigger = one_of("triggerReason", &self.trigger_reason, TRIGGER_REASONS)?;
        let info = self.transaction_info;
        let station_transaction_id = info.transaction_id.trim().to_owned();
        max_len("transactionInfo.transactionId", &info.transaction_id, 36)?;
        if station_transaction_id.is_empty() {
            return Err(PayloadError::invalid(
                "transactionInfo.transactionId",
                "must not be empty",
            ));
        }
        if let Some(state) = &info.charging_state {
            one_of("transactionInfo.chargingState", state, CHARGING_STATES)?;
        }
        let stopped_reason = info
            .stopped_reason
            .as_deref()
            .map(|r| one_of("transactionInfo.stoppedReason", r, STOPPED_REASONS))
            .transpose()?
            .map(str::to_owned);
        let connector_id = self
            .evse
            .as_ref()
            .map(|evse| evse.stored_connector("evse"))
            .transpose()?;
        if let Some(evse) = &self.evse {
            check::connector_id("evse.id", evse.id, 1)?;
        }
        let id_tag = match self.id_token {
            Some(token) => token.into_id_tag("idToken")?,
            None => None,
        };
        let values = self.meter_value.unwrap_or_default();
        let mut readings = meter_values::convert("meterValue", &values, connector_id.unwrap_or(0))?;
        readings.offline = self.offline.unwrap_or(false);
        Ok(Request::StationTransaction(StationTransaction {
            station_transaction_id,
            stage,
            connector_id,
            id_tag,
            timestamp,
            trigger: trigger.to_owned(),
            seq_no: self.seq_no,
            stopped_reason,
            readings,
        }))
    }
}

/// TransactionEventResponse: the verdict on the token when the event carried one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionEventResponse {
    /// The verdict on `idToken`, when it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_info: Option<IdTokenInfo>,
}
