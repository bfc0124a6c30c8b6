//! Documentation types for the OpenAPI document (`GET /api/v1/openapi.json`): the JSON shapes
//! the handlers build in `json.rs`, written as structs so utoipa can describe them.
//! `tests/openapi.rs` validates real responses against these schemas, so they cannot drift.

#![allow(dead_code)] // never built: they only describe what the handlers send

use utoipa::ToSchema;

/// Every error: a human-readable reason, shown as is by scripts.
#[derive(ToSchema)]
pub struct ErrorBody {
    /// Why the request failed.
    pub error: String,
}

/// One reading, its unit normalised (W, Wh, V, A, Celsius...).
#[derive(ToSchema)]
pub struct Sample {
    /// When it was measured (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
    /// Connector (0: the charge point as a whole).
    pub connector_id: u32,
    /// The transaction it belongs to, if any.
    pub transaction_id: Option<i64>,
    /// OCPP measurand (`Energy.Active.Import.Register`...).
    pub measurand: String,
    /// Phase (`L1`, `L1-N`...), if per phase.
    pub phase: Option<String>,
    /// Where it was measured (`Outlet`...).
    pub location: String,
    /// Why it was sent (`Sample.Periodic`...).
    pub context: String,
    /// Normalised unit.
    pub unit: String,
    /// The value, for `format` `Raw`.
    pub value: Option<f64>,
    /// The signed data as sent, for `format` `SignedData`.
    pub raw_value: Option<String>,
    /// `Raw` or `SignedData`.
    pub format: String,
}

/// A connector's last StatusNotification.
#[derive(ToSchema)]
pub struct Connector {
    /// Connector id (0: the charge point).
    pub connector_id: u32,
    /// OCPP status (`Available`, `Charging`...).
    pub status: Option<String>,
    /// OCPP error code (`NoError`...).
    pub error_code: Option<String>,
    /// Free text from the charge point.
    pub info: Option<String>,
    /// When the charge point reported it.
    pub timestamp: Option<String>,
}

/// A charge point: stored identity overlaid with the live session.
#[derive(ToSchema)]
pub struct ChargePoint {
    /// Its OCPP identity.
    pub id: String,
    /// Whether a WebSocket session is open, on any instance of the fleet.
    pub connected: bool,
    /// The instance holding the session (`server.instance_id`), null when none does.
    pub instance: Option<String>,
    /// From BootNotification.
    pub vendor: Option<String>,
    /// From BootNotification.
    pub model: Option<String>,
    /// From BootNotification.
    pub firmware_version: Option<String>,
    /// From BootNotification.
    pub serial_number: Option<String>,
    /// The OCPP version of its last BootNotification (`ocpp1.6`, `ocpp2.0.1`); null before the
    /// first boot (and for charge points last booted before versions were recorded).
    pub ocpp_version: Option<String>,
    /// Last message or connection change (RFC 3339).
    pub last_seen: Option<String>,
    /// Connector states, by id.
    pub connectors: Vec<Connector>,
}

/// `GET /api/v1/charge-points/{id}/meter-values`.
#[derive(ToSchema)]
pub struct MeterValues {
    /// The charge point.
    pub charge_point_id: String,
    /// Start of the range, inclusive.
    pub from: String,
    /// End of the range, exclusive.
    pub to: String,
    /// Oldest first.
    pub samples: Vec<Sample>,
    /// The instance holding the charge point's session, null when none does.
    pub instance: Option<String>,
    /// Held by another instance: the longest a reading can wait there before Redis (and so
    /// this answer) has it; null when the answer is complete.
    pub buffered_elsewhere_secs: Option<u64>,
}

/// `GET /api/v1/charge-points/{id}/meter-values/latest`.
#[derive(ToSchema)]
pub struct LatestSamples {
    /// The charge point.
    pub charge_point_id: String,
    /// The newest sample per connector, measurand and phase.
    pub samples: Vec<Sample>,
    /// The instance holding the charge point's session, null when none does.
    pub instance: Option<String>,
    /// Held by another instance: the longest a reading can wait there before Redis (and so
    /// this answer) has it; null when the answer is complete.
    pub buffered_elsewhere_secs: Option<u64>,
}

/// `GET /health`.
#[derive(ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /ready`.
#[derive(ToSchema)]
pub struct Ready {
    /// `ready` or `not ready`.
    pub status: String,
    /// `up` or `down`.
    pub redis: String,
    /// Samples the writer holds that are not yet in Redis.
    pub pending_samples: u64,
    /// Open sessions.
    pub connected_charge_points: u64,
    /// Why it is not ready (empty when ready).
    pub reasons: Vec<String>,
    /// `standalone` or `cluster` (`redis.mode`).
    pub redis_mode: String,
    /// `ok`, `failing` (see `reasons`) or `disabled` (`wal.enabled` = false).
    pub wal: String,
    /// Cluster mode only: the cluster's health as one node reports it.
    pub cluster: Option<ClusterReady>,
}

/// `cluster` in `/ready`: the fields of `CLUSTER INFO` that say whether every slot is served.
#[derive(ToSchema)]
pub struct ClusterReady {
    /// `ok`, `fail`, or `unknown` when no node answered.
    pub state: String,
    /// Slots served by a healthy master.
    pub slots_ok: Option<u64>,
    /// Slots whose master is suspected or known to fail.
    pub slots_failing: Option<u64>,
    /// Nodes known, masters and replicas.
    pub known_nodes: Option<u64>,
    /// Masters serving slots.
    pub size: Option<u64>,
}

/// An alert thresholds document (`GET`/`PUT /api/v1/thresholds`, per charge point overrides).
#[derive(ToSchema)]
pub struct Thresholds {
    /// Highest active power import, W.
    pub power_max_w: f64,
    /// Highest temperature, Celsius.
    pub temperature_max_c: f64,
    /// Lowest temperature, Celsius.
    pub temperature_min_c: f64,
    /// Lowest phase voltage, V.
    pub voltage_min_v: f64,
    /// Highest phase voltage, V.
    pub voltage_max_v: f64,
    /// Highest phase current, A.
    pub current_max_a: f64,
    /// How far back inside a threshold a reading must come to clear an alert, percent.
    pub hysteresis_pct: f64,
    /// For a charge point: `charge_point` (an override) or `global`.
    pub source: Option<String>,
}

/// `GET /api/v1/transactions/{id}`, and each row of a charge point's transaction list.
#[derive(ToSchema)]
pub struct Transaction {
    /// The id the central system handed out at StartTransaction.
    pub transaction_id: i64,
    /// The charge point that started it.
    pub charge_point_id: Option<String>,
    /// The connector it runs on.
    pub connector_id: Option<i64>,
    /// The idTag that started it.
    pub id_tag: Option<String>,
    /// Energy register at start (Wh).
    pub meter_start: Option<i64>,
    /// Start as reported by the charge point (RFC 3339).
    pub start_time: Option<String>,
    /// Energy register at stop (Wh), once stopped.
    pub meter_stop: Option<i64>,
    /// Stop as reported by the charge point (RFC 3339), once stopped.
    pub stop_time: Option<String>,
    /// The idTag that stopped it, if the charge point sent one.
    pub stop_id_tag: Option<String>,
    /// OCPP stop reason, if sent.
    pub stop_reason: Option<String>,
    /// `active` or `stopped`.
    pub state: String,
    /// `meter_stop - meter_start` once stopped, else null.
    pub energy_wh: Option<i64>,
    /// The charge point's own id of the transaction (OCPP 2.0.1 `transactionId`); present only
    /// on transactions a 2.0.1 charge point started.
    pub station_transaction_id: Option<String>,
}

/// `GET /api/v1/charge-points/{id}/transactions`.
#[derive(ToSchema)]
pub struct ChargePointTransactions {
    /// The charge point.
    pub charge_point_id: String,
    /// Newest start first.
    pub transactions: Vec<Transaction>,
}

/// A group of charge points (a site, a depot, a customer).
#[derive(ToSchema)]
pub struct GroupDocument {
    /// The group's id, as in the path.
    pub group_id: String,
    /// Display name.
    pub name: String,
    /// Member charge point ids, sorted.
    pub charge_points: Vec<String>,
}

/// Every group.
#[derive(ToSchema)]
pub struct Groups {
    /// Sorted by id.
    pub groups: Vec<GroupDocument>,
}

/// One bucket of the fleet's energy.
#[derive(ToSchema)]
pub struct FleetEnergyBucket {
    /// Bucket start (RFC 3339, UTC).
    pub start: String,
    /// Energy imported in the bucket by the fleet or group (Wh).
    pub energy_wh: f64,
    /// Charge points with roll-up data in the bucket.
    pub charge_points: u64,
}

/// Energy per bucket of the fleet or a group.
#[derive(ToSchema)]
pub struct FleetEnergy {
    /// `hour` or `day`.
    pub period: String,
    /// Range start as asked (RFC 3339).
    pub from: String,
    /// Range end as asked (RFC 3339, exclusive).
    pub to: String,
    /// The group asked for, if any.
    pub group: Option<String>,
    /// How far the fleet roll-up may lag the live samples (`buffer.rollup_interval_secs`).
    pub lag_secs: u64,
    /// Every bucket starting in `[from, to)`, oldest first.
    pub buckets: Vec<FleetEnergyBucket>,
}

/// One charge point of a ranking.
#[derive(ToSchema)]
pub struct FleetTopItem {
    /// The charge point.
    pub charge_point_id: String,
    /// Its value of the metric (Wh, W or a count).
    pub value: f64,
}

/// The charge points ranked by a metric.
#[derive(ToSchema)]
pub struct FleetTop {
    /// `energy_wh`, `max_power_w` or `samples`.
    pub metric: String,
    /// Range start, rounded down to the hour.
    pub from: String,
    /// Range end, rounded up to the hour (exclusive).
    pub to: String,
    /// The group asked for, if any.
    pub group: Option<String>,
    /// How far the fleet roll-up may lag the live samples.
    pub lag_secs: u64,
    /// Largest first.
    pub items: Vec<FleetTopItem>,
}
