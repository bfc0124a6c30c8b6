//! The data several actors exchange: what a charge point's session reports (boot identity,
//! connector statuses, open transactions, session events such as a disconnect), the record
//! changes bound for Redis, and the alert and thresholds documents.
//!
//! It imports no actor module, only the plain data modules ([`crate::id`], [`crate::sample`]):
//! every actor may depend on it and it on none of them, which is what keeps the crate's module
//! graph free of cycles (`tests/no_import_cycle.rs` checks that). Messages are not here: each
//! lives beside the actor that handles it, and the ones the stream fans out to any number of
//! subscribers beside the stream.

mod alert;
mod session;
mod store_op;
mod thresholds;

pub use alert::{Alert, AlertState, Rule, Severity};
pub use session::{BootInfo, OpenTransaction, SessionEvent, StatusReport};
pub use store_op::StoreOp;
pub use thresholds::{ThresholdError, ThresholdSet, ThresholdSource, Thresholds};
