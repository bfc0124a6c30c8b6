//! The OCPP-J protocol edge: pure functions between WebSocket text and the protocol-agnostic
//! [`Request`] / [`Reply`] of the charge point actor. No I/O happens here.
//!
//! Two versions share the envelope ([`frame`]) and the meter value conversion (`readings`):
//! OCPP 1.6 (this module's functions and [`v16`]) and OCPP 2.0.1 ([`v201`]). The session loop
//! holds the [`Protocol`] negotiated at the upgrade and calls its codec methods:
//! [`decode_frame`] on every text message, `decode_request` on each CALL, and `encode_reply`
//! (or `encode_payload_error` / `encode_frame_error`) for the answer. The free functions below
//! are the 1.6 codec. Real chargers deviate from the schemas in small ways; where a deviation loses no
//! information it is accepted (see [`decode_request`]), otherwise the CALLERROR names the field.

pub mod error;
pub mod frame;
pub mod outgoing;
pub mod protocol;
pub mod text;
pub mod v16;
pub mod v201;

mod check;
mod readings;
mod timestamp;

use actors::charge_point::{Reply, Request};
use serde_json::value::RawValue;

pub use error::{ErrorCode, FrameError, PayloadError};
pub use frame::{
    decode_frame, encode_call, encode_call_error, encode_call_error_text, encode_call_result, Frame,
};
pub use protocol::Protocol;

use v16::authorize::{AuthorizeConf, AuthorizeReq};
use v16::boot_notification::{BootNotificationConf, BootNotificationReq};
use v16::data_transfer::{DataTransferConf, DataTransferReq};
use v16::diagnostics_status_notification::{
    DiagnosticsStatusNotificationConf, DiagnosticsStatusNotificationReq,
};
use v16::firmware_status_notification::{
    FirmwareStatusNotificationConf, FirmwareStatusNotificationReq,
};
use v16::heartbeat::{HeartbeatConf, HeartbeatReq};
use v16::meter_values::{MeterValuesConf, MeterValuesReq};
use v16::start_transaction::{StartTransactionConf, StartTransactionReq};
use v16::status_notification::{StatusNotificationConf, StatusNotificationReq};
use v16::stop_transaction::{StopTransactionConf, StopTransactionReq};

/// OCPP 1.6 actions (core profiles and the security whitepaper) that a charge point must not or
/// need not send to this central system; answered NotSupported rather than NotImplemented,
/// since they are known.
const UNSUPPORTED_ACTIONS: &[&str] = &[
    "CancelReservation",
    "CertificateSigned",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "InstallCertificate",
    "LogStatusNotification",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SecurityEventNotification",
    "SendLocalList",
    "SetChargingProfile",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
    "SignedUpdateFirmware",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
];

/// Decodes the payload of a CALL into a domain request.
///
/// Strict where a mistake would mislead (required fields, JSON types, enums, ranges, lengths,
/// meterValue timestamps: CALLERROR naming the field's path), lenient where nothing is lost:
/// numeric `value`s, missing or unknown units, naive timestamps (read as UTC), empty value
/// lists, stray whitespace around enum values, unknown extra fields, `null` for optional
/// fields. A sampled value that cannot be read is skipped and listed in `Readings::rejected`.
pub fn decode_request(action: &str, payload: &RawValue) -> Result<Request, PayloadError> {
    match action {
        "Authorize" => check::parse::<AuthorizeReq>(payload)?.into_request(),
        "BootNotification" => check::parse::<BootNotificationReq>(payload)?.into_request(),
        "DataTransfer" => check::parse::<DataTransferReq>(payload)?.into_request(),
        "DiagnosticsStatusNotification" => {
            check::parse::<DiagnosticsStatusNotificationReq>(payload)?.into_request()
        }
        "FirmwareStatusNotification" => {
            check::parse::<FirmwareStatusNotificationReq>(payload)?.into_request()
        }
        "Heartbeat" => check::parse::<HeartbeatReq>(payload).map(|_| Request::Heartbeat),
        "MeterValues" => check::parse::<MeterValuesReq>(payload)?.into_request(),
        "StartTransaction" => check::parse::<StartTransactionReq>(payload)?.into_request(),
        "StatusNotification" => check::parse::<StatusNotificationReq>(payload)?.into_request(),
        "StopTransaction" => check::parse::<StopTransactionReq>(payload)?.into_request(),
        known if UNSUPPORTED_ACTIONS.contains(&known) => Err(PayloadError::UnsupportedAction {
            action: known.to_owned(),
        }),
        unknown => Err(PayloadError::UnknownAction {
            action: unknown.to_owned(),
        }),
    }
}

/// Encodes the server's answer as the CALLRESULT of `unique_id` (a CALLERROR InternalError for
/// [`Reply::Failed`]).
pub fn encode_reply(unique_id: &str, reply: &Reply) -> String {
    match reply {
        Reply::Boot {
            current_time,
            interval_secs,
        } => encode_call_result(
            unique_id,
            &BootNotificationConf {
                status: "Accepted",
                current_time: timestamp::format(*current_time),
                interval: *interval_secs,
            },
        ),
        Reply::Heartbeat { current_time } => encode_call_result(
            unique_id,
            &HeartbeatConf {
                current_time: timestamp::format(*current_time),
            },
        ),
        Reply::Authorize { status } => encode_call_result(
            unique_id,
            &AuthorizeConf {
                id_tag_info: (*status).into(),
            },
        ),
        Reply::StartTransaction {
            transaction_id,
            status,
        } => encode_call_result(
            unique_id,
            &StartTransactionConf {
                id_tag_info: (*status).into(),
                transaction_id: *transaction_id,
            },
        ),
        Reply::StopTransaction { status } => encode_call_result(
            unique_id,
            &StopTransactionConf {
                id_tag_info: status.map(Into::into),
            },
        ),
        Reply::MeterValues => encode_call_result(unique_id, &MeterValuesConf {}),
        Reply::StatusNotification => encode_call_result(unique_id, &StatusNotificationConf {}),
        Reply::DataTransfer { status, data } => encode_call_result(
            unique_id,
            &DataTransferConf {
                status: status.as_str(),
                data: data.clone(),
            },
        ),
        Reply::DiagnosticsStatus => {
            encode_call_result(unique_id, &DiagnosticsStatusNotificationConf {})
        }
        Reply::FirmwareStatus => encode_call_result(unique_id, &FirmwareStatusNotificationConf {}),
        Reply::Failed(message) => encode_call_error(unique_id, ErrorCode::InternalError, message),
        // Answers to requests only the 2.0.1 codec makes; a 1.6 session never receives them.
        Reply::StationTransaction { .. } | Reply::Noted => encode_call_error(
            unique_id,
            ErrorCode::InternalError,
            "this reply has no OCPP 1.6 form",
        ),
    }
}

/// The CALLERROR answering a CALL whose payload [`decode_request`] refused.
pub fn encode_payload_error(unique_id: &str, err: &PayloadError) -> String {
    encode_call_error(unique_id, err.code(), &err.description())
}

/// The CALLERROR answering a message [`decode_frame`] refused.
pub fn encode_frame_error(err: &FrameError) -> String {
    encode_call_error(err.unique_id(), err.code(), &err.description())
}

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod meter_values_tests;
#[cfg(test)]
mod schema_tests;
