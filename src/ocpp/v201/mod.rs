//! The OCPP 2.0.1 codec: hand-written payload types for the messages a charging station sends,
//! one file per action, decoded into the same protocol-neutral [`Request`] as 1.6 and answered
//! from the same [`Reply`] (docs/ocpp201.md has the mapping).
//!
//! Strict like the 1.6 codec where a mistake would mislead (required fields, types, enums,
//! lengths, ranges: CALLERROR naming the field's path, with the 2.0.1 spelling of the code),
//! lenient where nothing is lost (unknown extra fields, `customData`, a sampled value that
//! cannot be read costs only itself).
//!
//! The mapping onto the stored model: a 2.0.1 EVSE is a stored connector (EVSE 0 is the
//! station's main meter, as 1.6 connector 0); the connector within an EVSE names the plug and
//! is not a series of its own. Transactions are named by the station (`transactionId`, a
//! string); the actor maps each onto a server-assigned integer id.
//!
//! The calls the central system makes ([`outgoing`]) put the actors' 1.6-shaped server calls in
//! 2.0.1 terms (TriggerMessage, GetVariables, SetVariables; docs/ocpp201-calls.md).

pub mod authorize;
pub mod boot_notification;
pub mod component_variable;
pub mod data_transfer;
pub mod evse;
pub mod firmware_status_notification;
pub mod get_variables;
pub mod heartbeat;
pub mod log_status_notification;
pub mod meter_values;
pub mod notify_event;
pub mod outgoing;
pub mod security_event_notification;
pub mod set_variables;
pub mod status_info;
pub mod status_notification;
pub mod transaction_event;
pub mod trigger_message;
pub mod variables;

use actors::charge_point::{Reply, Request};
use serde::Serialize;
use serde_json::value::RawValue;

use super::check;
use super::error::{ErrorCode, PayloadError};
use super::frame::{encode_call_error_text, encode_call_result};
use super::timestamp;

use authorize::{AuthorizeRequest, AuthorizeResponse, IdTokenInfo};
use boot_notification::{BootNotificationRequest, BootNotificationResponse};
use data_transfer::{DataTransferRequest, DataTransferResponse};
use firmware_status_notification::FirmwareStatusNotificationRequest;
use heartbeat::{HeartbeatRequest, HeartbeatResponse};
use log_status_notification::LogStatusNotificationRequest;
use meter_values::MeterValuesRequest;
use notify_event::NotifyEventRequest;
use security_event_notification::SecurityEventNotificationRequest;
use status_notification::StatusNotificationRequest;
use transaction_event::{TransactionEventRequest, TransactionEventResponse};

/// OCPP 2.0.1 actions the CSMS sends and a charging station must not: answered NotSupported,
/// since they are known.
const CSMS_ACTIONS: &[&str] = &[
    "CancelReservation",
    "CertificateSigned",
    "ChangeAvailability",
    "ClearCache",
    "ClearChargingProfile",
    "ClearDisplayMessage",
    "ClearVariableMonitoring",
    "CostUpdated",
    "CustomerInformation",
    "DeleteCertificate",
    "GetBaseReport",
    "GetChargingProfiles",
    "GetCompositeSchedule",
    "GetDisplayMessages",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "GetMonitoringReport",
    "GetReport",
    "GetTransactionStatus",
    "GetVariables",
    "InstallCertificate",
    "PublishFirmware",
    "RequestStartTransaction",
    "RequestStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "SetDisplayMessage",
    "SetMonitoringBase",
    "SetMonitoringLevel",
    "SetNetworkProfile",
    "SetVariableMonitoring",
    "SetVariables",
    "TriggerMessage",
    "UnlockConnector",
    "UnpublishFirmware",
    "UpdateFirmware",
];

/// Decodes the payload of a 2.0.1 CALL into a domain request. Station messages this server
/// does not handle (NotifyReport, ReportChargingProfiles, ...) and unknown actions are
/// NotImplemented; CSMS-only actions NotSupported.
pub fn decode_request(action: &str, payload: &RawValue) -> Result<Request, PayloadError> {
    match action {
        "Authorize" => check::parse::<AuthorizeRequest>(payload)?.into_request(),
        "BootNotification" => check::parse::<BootNotificationRequest>(payload)?.into_request(),
        "DataTransfer" => check::parse::<DataTransferRequest>(payload)?.into_request(),
        "FirmwareStatusNotification" => {
            check::parse::<FirmwareStatusNotificationRequest>(payload)?.into_request()
        }
        "Heartbeat" => check::parse::<HeartbeatRequest>(payload).map(|_| Request::Heartbeat),
        "LogStatusNotification" => {
            check::parse::<LogStatusNotificationRequest>(payload)?.into_request()
        }
        "MeterValues" => check::parse::<MeterValuesRequest>(payload)?.into_request(),
        "NotifyEvent" => check::parse::<NotifyEventRequest>(payload)?.into_request(),
        "SecurityEventNotification" => {
            check::parse::<SecurityEventNotificationRequest>(payload)?.into_request()
        }
        "StatusNotification" => check::parse::<StatusNotificationRequest>(payload)?.into_request(),
        "TransactionEvent" => check::parse::<TransactionEventRequest>(payload)?.into_request(),
        known if CSMS_ACTIONS.contains(&known) => Err(PayloadError::UnsupportedAction {
            action: known.to_owned(),
        }),
        other => Err(PayloadError::UnknownAction {
            action: other.to_owned(),
        }),
    }
}

/// An empty response payload (`{}`): StatusNotification, MeterValues, NotifyEvent,
/// SecurityEventNotification, FirmwareStatusNotification, LogStatusNotification.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EmptyResponse {}

/// Encodes the answer to a 2.0.1 CALL. Every domain reply names its response type, so
/// `_action` is not needed to pick it; it is part of the per-session codec's signature because
/// a version may answer several actions with one domain reply (2.0.1 does: every empty one).
pub fn encode_reply(unique_id: &str, _action: &str, reply: &Reply) -> String {
    match reply {
        Reply::Boot {
            current_time,
            interval_secs,
        } => encode_call_result(
            unique_id,
            &BootNotificationResponse {
                current_time: timestamp::format(*current_time),
                interval: *interval_secs,
                status: "Accepted",
            },
        ),
        Reply::Heartbeat { current_time } => encode_call_result(
            unique_id,
            &HeartbeatResponse {
                current_time: timestamp::format(*current_time),
            },
        ),
        Reply::Authorize { status } => encode_call_result(
            unique_id,
            &AuthorizeResponse {
                id_token_info: IdTokenInfo {
                    status: status.as_str(),
                },
            },
        ),
        Reply::StationTransaction { status } => encode_call_result(
            unique_id,
            &TransactionEventResponse {
                id_token_info: status.map(|s| IdTokenInfo { status: s.as_str() }),
            },
        ),
        Reply::DataTransfer { status, data } => encode_call_result(
            unique_id,
            &DataTransferResponse {
                status: status.as_str(),
                data: data.clone(),
            },
        ),
        Reply::MeterValues
        | Reply::StatusNotification
        | Reply::DiagnosticsStatus
        | Reply::FirmwareStatus
        | Reply::Noted => encode_call_result(unique_id, &EmptyResponse {}),
        Reply::Failed(message) => {
            encode_call_error_text(unique_id, ErrorCode::InternalError.as_str(), message)
        }
        // Answers to 1.6 requests, which the 2.0.1 codec never makes.
        Reply::StartTransaction { .. } | Reply::StopTransaction { .. } => encode_call_error_text(
            unique_id,
            ErrorCode::InternalError.as_str(),
            "this reply has no OCPP 2.0.1 form",
        ),
    }
}

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod outgoing_tests;
#[cfg(test)]
mod schema_tests;
