//! What a charge point's session reports, as the actors pass it on: the identity it boots
//! with, its connectors' statuses, its open transactions and the events of its session. The
//! charge point actor produces them; the writer stores them, the stream fans the events out,
//! the statistics and the alert rules read them, the admin API shows them.

use chrono::{DateTime, Utc};

/// Identity a charge point reports when it boots; shown by the admin API.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BootInfo {
    /// `chargePointVendor`.
    pub vendor: String,
    /// `chargePointModel`.
    pub model: String,
    /// `chargePointSerialNumber`.
    pub serial_number: Option<String>,
    /// `chargeBoxSerialNumber`.
    pub charge_box_serial_number: Option<String>,
    /// `firmwareVersion`.
    pub firmware_version: Option<String>,
    /// `iccid` of the modem.
    pub iccid: Option<String>,
    /// `imsi` of the modem.
    pub imsi: Option<String>,
    /// `meterType` of the main meter.
    pub meter_type: Option<String>,
    /// `meterSerialNumber` of the main meter.
    pub meter_serial_number: Option<String>,
    /// The OCPP version the charge point booted with (`ocpp1.6`, `ocpp2.0.1`), set by the
    /// session that carried the boot, so the API can say which protocol a station speaks.
    #[serde(default)]
    pub ocpp_version: Option<String>,
}

/// A connector's state as last reported by StatusNotification.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatusReport {
    /// 0 is the charge point as a whole.
    pub connector_id: u32,
    /// OCPP `ChargePointStatus` (Available, Charging, Faulted, ...), validated by the codec.
    pub status: String,
    /// OCPP `ChargePointErrorCode` (NoError, GroundFailure, ...), validated by the codec.
    pub error_code: String,
    /// Free-form `info`.
    pub info: Option<String>,
    /// When the status changed, if the charge point said.
    pub timestamp: Option<DateTime<Utc>>,
    /// `vendorId` of a vendor-specific error.
    pub vendor_id: Option<String>,
    /// `vendorErrorCode`.
    pub vendor_error_code: Option<String>,
}

/// An open transaction as the actor tracks it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenTransaction {
    /// Server-assigned id.
    pub transaction_id: i32,
    /// Connector it runs on.
    pub connector_id: u32,
    /// Token that started it.
    pub id_tag: String,
    /// Register at start, Wh.
    pub meter_start: i64,
    /// Start time.
    pub started_at: DateTime<Utc>,
}

/// Something that happened to a charge point's session, other than samples.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A session opened.
    Connected,
    /// The session closed.
    Disconnected,
    /// A connector reported a status.
    Status(StatusReport),
    /// A transaction started.
    TransactionStarted {
        /// Server-assigned id.
        transaction_id: i32,
        /// Connector it runs on.
        connector_id: u32,
        /// Register at start, Wh.
        meter_start: i64,
    },
    /// A transaction stopped.
    TransactionStopped {
        /// Server-assigned id.
        transaction_id: i32,
        /// Connector it ran on, when this session saw it start.
        connector_id: Option<u32>,
        /// Register at stop, Wh.
        meter_stop: i64,
    },
    /// The MeterValueSampleInterval the charge point uses, learned by the boot metering run;
    /// the stale-data alert waits 3x this instead of the configured default.
    SampleInterval {
        /// Seconds between MeterValues during a transaction.
        secs: u32,
    },
}
