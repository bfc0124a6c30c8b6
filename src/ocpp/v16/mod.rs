//! Hand-written OCPP 1.6 payload types, one file per action a charge point sends, each with
//! its `.req` (read) and `.conf` (written) form.

pub mod authorize;
pub mod boot_notification;
pub mod data_transfer;
pub mod diagnostics_status_notification;
pub mod firmware_status_notification;
pub mod heartbeat;
pub mod id_tag_info;
pub mod meter_values;
pub mod start_transaction;
pub mod status_notification;
pub mod stop_transaction;
pub mod text;
