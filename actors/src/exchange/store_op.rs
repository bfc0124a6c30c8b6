//! The record changes (boot, presence, status, transactions, statistics) bound for Redis: the
//! charge point actor makes them, the write-ahead log keeps them, the writer applies them.

use chrono::{DateTime, Utc};

use super::{BootInfo, StatusReport};

/// A change to a charge point's or transaction's record; rare next to samples, but it must reach
/// Redis through the same retrying path so that an outage loses none of it either.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum StoreOp {
    /// The charge point booted: store its identity.
    Booted(BootInfo),
    /// The charge point connected (true) or disconnected (false) at this time.
    Presence {
        /// Whether a session is open.
        connected: bool,
        /// When it changed.
        at: DateTime<Utc>,
    },
    /// A connector reported a status.
    Status(StatusReport),
    /// A transaction started.
    TransactionStarted {
        /// Server-assigned id.
        transaction_id: i32,
        /// Connector it runs on.
        connector_id: u32,
        /// Token that started it.
        id_tag: String,
        /// Register at start, Wh.
        meter_start: i64,
        /// Start time.
        timestamp: DateTime<Utc>,
        /// The charge point's own id of the transaction, when it names its transactions
        /// (OCPP 2.0.1); stored on the record and in the charge point's id map. Absent from
        /// older log records, and left out of new ones without it, so the log stays readable
        /// both ways.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        station_transaction_id: Option<String>,
    },
    /// A transaction stopped.
    TransactionStopped {
        /// Server-assigned id.
        transaction_id: i32,
        /// Token that stopped it, if any.
        id_tag: Option<String>,
        /// Register at stop, Wh.
        meter_stop: i64,
        /// Stop time.
        timestamp: DateTime<Utc>,
        /// Why it stopped.
        reason: Option<String>,
    },
    /// The real-time statistics snapshot (`SET ocpp:{cp}:stats … EX`), sent at most every few
    /// seconds per charge point and on disconnect, never per sample.
    Stats {
        /// The JSON document ([`crate::stats::StoredStats`]).
        document: String,
        /// Seconds it lives (`retention.stats_hours`).
        ttl_secs: u64,
    },
}
