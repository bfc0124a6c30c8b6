//! BootNotification (2.0.1): the station's identity, onto the same [`BootInfo`] as 1.6.

use actors::charge_point::Request;
use actors::exchange::BootInfo;
use serde::{Deserialize, Serialize};

use crate::ocpp::check::{max_len, max_len_opt, one_of};
use crate::ocpp::error::PayloadError;

/// `BootReasonEnumType`.
const BOOT_REASONS: &[&str] = &[
    "ApplicationReset",
    "FirmwareUpdate",
    "LocalReset",
    "PowerUp",
    "RemoteReset",
    "ScheduledReset",
    "Triggered",
    "Unknown",
    "Watchdog",
];

/// BootNotificationRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotificationRequest {
    /// The station's identity.
    pub charging_station: ChargingStation,
    /// Why it booted (checked, not stored: the boot time is what the API shows).
    pub reason: String,
}

/// `ChargingStationType`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargingStation {
    /// Serial number (at most 25 characters).
    #[serde(default)]
    pub serial_number: Option<String>,
    /// Model (at most 20 characters).
    pub model: String,
    /// The modem's SIM identity.
    #[serde(default)]
    pub modem: Option<Modem>,
    /// Vendor (at most 50 characters).
    pub vendor_name: String,
    /// Firmware version (at most 50 characters).
    #[serde(default)]
    pub firmware_version: Option<String>,
}

/// `ModemType`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Modem {
    /// ICCID of the SIM (at most 20 characters).
    #[serde(default)]
    pub iccid: Option<String>,
    /// IMSI of the SIM (at most 20 characters).
    #[serde(default)]
    pub imsi: Option<String>,
}

impl BootNotificationRequest {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        one_of("reason", &self.reason, BOOT_REASONS)?;
        let cs = self.charging_station;
        max_len("chargingStation.vendorName", &cs.vendor_name, 50)?;
        max_len("chargingStation.model", &cs.model, 20)?;
        max_len_opt(
            "chargingStation.serialNumber",
            cs.serial_number.as_deref(),
            25,
        )?;
        max_len_opt(
            "chargingStation.firmwareVersion",
            cs.firmware_version.as_deref(),
            50,
        )?;
        let modem = cs.modem.unwrap_or(Modem {
            iccid: None,
            imsi: None,
        });
        max_len_opt("chargingStation.modem.iccid", modem.iccid.as_deref(), 20)?;
        max_len_opt("chargingStation.modem.imsi", modem.imsi.as_deref(), 20)?;
        Ok(Request::Boot(BootInfo {
            vendor: cs.vendor_name,
            model: cs.model,
            serial_number: cs.serial_number,
            charge_box_serial_number: None,
            firmware_version: cs.firmware_version,
            iccid: modem.iccid,
            imsi: modem.imsi,
            meter_type: None,
            meter_serial_number: None,
            ocpp_version: None,
        }))
    }
}

/// BootNotificationResponse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotificationResponse {
    /// The CSMS's current time (RFC 3339, UTC).
    pub current_time: String,
    /// Heartbeat interval in seconds.
    pub interval: u32,
    /// Registration status; this server always accepts.
    pub status: &'static str,
}
