//! The protocol-agnostic core of ocpp-meter: everything between "a charge point said this" and
//! "it is in Redis", with no HTTP, WebSocket or OCPP-J in sight.
//!
//! # Layout
//!
//! ```text
//!  edge (src/ws.rs) --Request--> ChargePointActor --Reply--> edge
//!                                   |  samples
//!                                   +--> SampleStream --> subscribers (roll-ups, alerts, live feed)
//!                                   +--> its StationBuffer ---------WriteBatch--> RedisWriter --> Redis
//!                                   +--StoreOp (boot, status, transactions)-------> RedisWriter
//! ```
//!
//! - [`sample`]: samples, OCPP 1.6 enumerations, unit normalisation.
//! - [`exchange`]: the data several actors exchange (boot info, connector statuses, open
//!   transactions, session events, record changes for Redis, the alert and thresholds
//!   documents). It uses no actor module, so every actor can use it and the module graph has no
//!   cycle (`docs/architecture.md` draws it, `tests/no_import_cycle.rs` keeps it so).
//! - [`charge_point`]: requests, replies and the per-connection actor.
//! - [`latest`]: the newest reading per series of a connected charge point.
//! - [`buffer`]: per-station batching, state of the station's actor (not an actor of its own).
//! - [`writer`]: the Redis writer (pipelines, retry, bounded backlog).
//! - [`stream`]: fan-out of live samples.
//! - [`aggregator`]: hourly and daily roll-ups, merged into Redis by a Lua script.
//! - [`backlog`]: which charge points have batches on their way to Redis through the roll-ups
//!   (a read skips asking the aggregator for the others).
//! - [`stats`]: real-time statistics per charge point (memory, snapshot in Redis).
//! - [`registry`]: connected charge points.
//! - [`server_call`]: calls the server makes to a charge point (TriggerMessage,
//!   GetConfiguration, ChangeConfiguration) and the per-session queue that keeps one outstanding.
//! - [`metering`] / [`boot_metering`]: the metering profile set by ChangeConfiguration after boot.
//! - [`store`]: Redis key schema, encoding and reads.
//! - [`wal`]: the write-ahead log every answered reading reaches before its CALLRESULT.
//! - [`fleet`]: several instances on one Redis: instance leases, owner records, takeovers,
//!   calls routed to the instance holding a charge point, fleet-wide events.

pub mod aggregator;
pub mod alerts;
pub mod backlog;
pub mod boot_metering;
pub mod buffer;
pub mod charge_point;
pub mod counters;
pub mod dedupe;
pub mod exchange;
pub mod fleet;
pub mod id;
pub mod latest;
pub mod metering;
pub mod redis_pool;
pub mod registry;
pub mod sample;
pub mod server_call;
pub mod stats;
pub mod store;
pub mod stream;
pub mod txn_ids;
pub mod wal;
pub mod writer;

/// Hash map for what is looked up with every sample (series, reading identities, charge point
/// ids): foldhash rather than the standard SipHash, which the issue 5 profile showed at about a
/// tenth of the server's time. Seeded per process, so keys that charge points choose cannot be
/// aimed at a known hash function.
pub type FastHashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Hash set counterpart of [`FastHashMap`].
pub type FastHashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
