//! How ocpp-meter lays its data out in Redis.
//!
//! Redis keeps everything in memory, so the raw-sample encoding decides what a fleet costs
//! (target: at most 8 bytes of Redis memory and 0.02 commands per stored sample). The full
//! description, with the measured figures, is in `docs/storage.md`.
//!
//! | Key ([`keys`]) | Type | Holds | TTL |
//! |---|---|---|---|
//! | `ocpp:{cp}:raw:<hour>` | string | appended [`chunk`] blocks of raw samples for one UTC hour (`hour` = unix s / 3600) | `retention.raw_days` (default 7) counted from the hour's end, set when the chunk is created |
//! | `ocpp:{cp}:latest` | hash | series (`1:Voltage:L1:Outlet`) -> one-sample block, written coalesced | none |
//! | `ocpp:{cp}:info` | hash | BootNotification data, last seen | none |
//! | `ocpp:{cp}:connectors` | hash | connector id -> latest StatusNotification (JSON) | none |
//! | `ocpp:{cp}:txns` | sorted set | transaction ids scored by start time (unix ms) | none |
//! | `ocpp:txns` | sorted set | every transaction id of the fleet scored by start time (unix ms) | none |
//! | `ocpp:id-tag:<tag>:txns` | sorted set | transaction ids of one idTag (lowercased, escaped: [`keys::id_tag_transactions`]) scored by start time | none |
//! | `ocpp:txns:backfilled` | string | set once older per-charge-point indexes were copied into the two above | none |
//! | `ocpp:charge-points` | set | every known charge point id | none |
//! | `ocpp:txn:<id>` | hash | one transaction record | none |
//! | `ocpp:txn:seq` | string | `INCR` counter for transaction ids | none |
//! | `ocpp:{cp}:password` | string | argon2id PHC string of the charge point's Basic-auth password ([`credentials`]) | none |
//! | `ocpp:{cp}:stats` | string | real-time statistics snapshot (JSON, [`crate::stats::StoredStats`]) | `retention.stats_hours` (default 24 h) |
//!
//! | `ocpp:{cp}:configuration` | string | configuration read with GetConfiguration at boot (JSON) | none |
//! | `ocpp:{cp}:metering` | string | metering profile override (JSON) | none |
//! | `ocpp:{cp}:metering:refused` | hash | metering key -> refused value and status (JSON) | none |
//! | `ocpp:groups` | hash | group id -> group document (JSON `{name, charge_points}`, [`groups`]) | none |
//! | `ocpp:{fleet}:agg:<period>:<start>` | hash | charge point id -> `samples\|energy_wh\|max_power_w` of the bucket, plus `/energy_wh` and `/charge_points` ([`fleet_rollup`]) | as the charge points' buckets of the period |
//!
//! `{cp}` is the Redis Cluster hash tag: all keys of one charge point share a slot.
//!
//! Write path: each charge point's buffer flushes up to 100 samples; per flush the writer sends
//! one `APPEND` per chunk (hour) touched, an `EXPIREAT` only when that `APPEND` created the
//! chunk (the writer remembers which chunks already expire): about one command per 100 samples.
//! The latest-sample hash gets one `HSET` per charge point at most every
//! `buffer.latest_interval_secs` (and at session end and shutdown), coalescing every flush in
//! between (see [`crate::writer`]).

pub mod aggregates;
pub mod alerts;
pub mod chunk;
pub mod credentials;
pub mod fleet_rollup;
pub mod groups;
pub mod hour_samples;
pub mod keys;
pub mod metering;
pub mod read_cache;
pub mod reads;
pub mod tracked_reads;
pub mod transactions;
mod varint;

pub use chunk::{
    decode_chunk, decode_chunk_matching, decode_sample_value, encode_block, encode_sample_value,
    BlockError, ChunkError, SampleFilter,
};
pub use keys::hours_covering;
