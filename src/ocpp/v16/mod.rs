//! Hand-written OCPP 1.6 payload types, one file per action, each with its `.req` and
//! `.conf` form (read and written for the actions a charge point sends, written and read for
//! the calls the central system makes).

pub mod authorize;
pub mod boot_notification;
pub mod change_configuration;
pub mod data_transfer;
pub mod diagnostics_status_notification;
pub mod firmware_status_notification;
pub mod get_configuration;
pub mod heartbeat;
pub mod id_tag_info;
pub mod meter_values;
pub mod start_transaction;
pub mod status_notification;
pub mod stop_transaction;
/// The borrowing string types, shared by both codecs (kept reachable under their 1.6 path).
pub use super::text;
pub mod trigger_message;
