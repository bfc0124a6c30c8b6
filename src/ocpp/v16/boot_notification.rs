//! BootNotification.

use actors::charge_point::Request;
use actors::exchange::BootInfo;
use serde::{Deserialize, Serialize};

use crate::ocpp::check::{max_len, max_len_opt};
use crate::ocpp::error::PayloadError;

/// BootNotification.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotificationReq {
    /// Vendor of the charge point (at most 20 characters).
    pub charge_point_vendor: String,
    /// Model of the charge point (at most 20 characters).
    pub charge_point_model: String,
    /// Serial number of the charge point (at most 25 characters).
    #[serde(default)]
    pub charge_point_serial_number: Option<String>,
    /// Serial number of the charge box; deprecated by the spec (at most 25 characters).
    #[serde(default)]
    pub charge_box_serial_number: Option<String>,
    /// Firmware version of the charge point (at most 50 characters).
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// ICCID of the modem's SIM card (at most 20 characters).
    #[serde(default)]
    pub iccid: Option<String>,
    /// IMSI of the modem's SIM card (at most 20 characters).
    #[serde(default)]
    pub imsi: Option<String>,
    /// Type of the main power meter (at most 25 characters).
    #[serde(default)]
    pub meter_type: Option<String>,
    /// Serial number of the main power meter (at most 25 characters).
    #[serde(default)]
    pub meter_serial_number: Option<String>,
}

impl BootNotificationReq {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        max_len("chargePointVendor", &self.charge_point_vendor, 20)?;
        max_len("chargePointModel", &self.charge_point_model, 20)?;
        let s = &self;
        max_len_opt(
            "chargePointSerialNumber",
            s.charge_point_serial_number.as_deref(),
            25,
        )?;
        max_len_opt(
            "chargeBoxSerialNumber",
            s.charge_box_serial_number.as_deref(),
            25,
        )?;
        max_len_opt("firmwareVersion", s.firmware_version.as_deref(), 50)?;
        max_len_opt("iccid", s.iccid.as_deref(), 20)?;
        max_len_opt("imsi", s.imsi.as_deref(), 20)?;
        max_len_opt("meterType", s.meter_type.as_deref(), 25)?;
        max_len_opt("meterSerialNumber", s.meter_serial_number.as_deref(), 25)?;
        Ok(Request::Boot(BootInfo {
            vendor: self.charge_point_vendor,
            model: self.charge_point_model,
            serial_number: self.charge_point_serial_number,
            charge_box_serial_number: self.charge_box_serial_number,
            firmware_version: self.firmware_version,
            iccid: self.iccid,
            imsi: self.imsi,
            meter_type: self.meter_type,
            meter_serial_number: self.meter_serial_number,
            ocpp_version: None,
        }))
    }
}

/// BootNotification.conf.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotificationConf {
    /// Whether the charge point is registered; this server always accepts.
    pub status: &'static str,
    /// The central system's current time (RFC 3339, UTC).
    pub current_time: String,
    /// Heartbeat interval in seconds the charge point should use.
    pub interval: u32,
}
