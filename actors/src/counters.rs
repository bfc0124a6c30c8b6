//! Ingest counters shared by every charge point actor and read by `/metrics`.

use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Counts of what charge points sent; atomics so the hot path never takes a lock.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// OCPP requests handled.
    pub messages: AtomicU64,
    /// Readings dropped as repeats of recent ones (a retried MeterValues).
    pub samples_repeated: AtomicU64,
    /// Samples accepted (after de-duplication).
    pub samples_received: AtomicU64,
    /// Sampled values skipped because they could not be read.
    pub values_rejected: AtomicU64,
    /// Timestamps without a UTC offset, read as UTC.
    pub naive_timestamps: AtomicU64,
    /// Station buffers alive; shutdown waits for this to reach zero (every buffer flushed).
    pub open_buffers: AtomicUsize,
    /// Samples sitting in station buffers right now.
    pub buffered_samples: AtomicUsize,
    /// WebSocket upgrades refused with 401 (wrong, missing or unknown credentials); for
    /// `/metrics`.
    pub auth_failures: AtomicU64,
    /// WebSocket upgrades refused with 429 because their address failed too often.
    pub auth_rate_limited: AtomicU64,
}
